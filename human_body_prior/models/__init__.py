"""VPoser v2 (2021, ``V02_05``) at its upstream import paths: ``models.vposer_model`` and ``models.model_components``."""
