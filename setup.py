from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [
    line.strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="human_body_prior",
    version="1.0.0",
    description="VPoser body pose prior and SMPL-family body models in PyTorch, with open defaults",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["human_body_prior", "human_body_prior.*"]),
    package_data={"human_body_prior": ["train/*.ini"]},
    python_requires=">=3.10,<3.13",
    install_requires=requirements,
)
