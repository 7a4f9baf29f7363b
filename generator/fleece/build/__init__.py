"""`fleece build`: the deployment zip of a service.

- ``artifact``: the build as one function (settings, source, dependencies,
  bytecode, the zip or the folder, limits).
- ``contents``: what a folder gives the zip (excludes, leftovers, links).
- ``requirements``: what a requirements file reads, and the staged copy pip
  installs from.
- ``wheels``: the target runtime, pip fetching its wheels without Docker, and
  environment markers.
- ``container``: installing and compiling inside the AWS SAM build image
  (``--docker``).
- ``cache``: installed dependencies and their compressed layer.
- ``bytecode``: finding the runtime's Python and compiling with it.
- ``template``: the handlers ``template.yaml`` expects.
- ``ziparchive``: the reproducible zip.
"""
