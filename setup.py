"""Package layout (metadata is in pyproject.toml).

The shipped body models and priors stay in the repository's top-level ``support_data/`` (every folder in
it: body models, VPoser experiment folders, other priors); wheels and ``pip install .`` carry them as the
package folder ``human_body_prior/_support_data``, which ``human_body_prior.support_data_dir()`` finds.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["human_body_prior", "human_body_prior.*"]) + ["human_body_prior._support_data"],
    package_dir={"human_body_prior._support_data": "support_data"},
    package_data={"human_body_prior": ["train/*.ini"], "human_body_prior._support_data": ["**/*"]},
    exclude_package_data={"human_body_prior._support_data": ["**/__pycache__/*", "**/*.pyc"]},
    include_package_data=False,
)
