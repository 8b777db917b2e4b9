"""Upstream-compatibility shims: VPoser v2 (2021, ``V02_05``) and its IK engine at their upstream paths."""
