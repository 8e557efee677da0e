"""Container images for the local node, built here without a Docker engine or a registry.

`make images` runs `python -m tests.cluster.images.build`: Debian bookworm bases made by
debootstrap (`bases.py`), the modeldeploy image from the top-level Dockerfile, the iris model image
through `bentoml build` + `bentoml containerize --backend buildah`, and the sidecar image from
`sidecar/Dockerfile` — each built by buildah (`buildah.py`) and exported as an OCI archive into
`$MODELDEPLOY_CACHE/images/`, named by a content hash of everything that goes into it
(`content.py`), and listed in `refs.json` for the node to import. docs/packaging.md tells the story.
"""
