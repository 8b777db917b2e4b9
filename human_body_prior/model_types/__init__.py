"""Model types of the SMPL family: one :class:`ModelSpec` each (``SPECS``), and the identification of a
model file's type from its arrays."""

from human_body_prior.model_types.spec import (  # noqa: F401 (the package's interface)
    MANO,
    MODEL_TYPES,
    SMPL,
    SMPLH,
    SMPLX,
    SPECS,
    ModelSpec,
    identify_model_type,
    model_spec,
    spec_for_joint_count,
)
