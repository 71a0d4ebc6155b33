"""ftprof installed by pip: the `ftprof` executable and the recorder `libftprof.so` live in this
directory (with the shared libraries they need in the `ftprof.libs` directory beside it, in a wheel
built by tools/build-wheel). There is no Python API: run `ftprof` or `python -m ftprof`."""
