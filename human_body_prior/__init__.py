"""VPoser body pose prior and SMPL-family body models in PyTorch."""

from human_body_prior.support_paths import (
    default_body_model_path,
    default_vposer_dir,
    support_data_dir,
)

__version__ = "1.0.0"
__all__ = ["default_body_model_path", "default_vposer_dir", "support_data_dir", "__version__"]
