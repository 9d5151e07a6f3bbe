"""Tools for the tests and benchmarks only: a toy generator of LAMOST-like spectra
(:mod:`~apogee_net.testing.lamost_spectra`) and straight-line reference implementations
(:mod:`~apogee_net.testing.reference`). The library never imports this package."""
