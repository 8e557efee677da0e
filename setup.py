"""Map the `modeldeploy` namespace, which is split over contract/ and operator/, for setuptools.

Metadata lives in pyproject.toml; this file only tells setuptools where each package is.
"""

from setuptools import find_namespace_packages, setup

packages: list[str] = []
package_dir: dict[str, str] = {}
for root in ("contract", "operator"):
    for package in find_namespace_packages(root, include=["modeldeploy.*"]):
        packages.append(package)
        package_dir[package] = f"{root}/{package.replace('.', '/')}"

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={"": ["*.yaml", "*.json", "*.lua", "*.html", "*.js", "*.css"]},
)
