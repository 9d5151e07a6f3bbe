"""LAMOST backend: the Bayesian CNN of Li et al. ("1.2 million giants from LAMOST DR8").

One module per concept, in the order data flows:

- :mod:`~apogee_net.lamost.io`: LAMOST LRS FITS readers (DR1–DR8 image, DR9+ COADD table,
  gzip or not), header redshift, S/N, class and IDs.
- :mod:`~apogee_net.lamost.preprocess`: cosmic rays, rest frame, flux-conserving rebin to
  4000–8500 Å at 1 Å, The Cannon's Gaussian-smoothing continuum (L = 50 Å).
- :mod:`~apogee_net.lamost.ingest`: files → the shared HDF5 store (kind ``lamost``).
- :mod:`~apogee_net.lamost.labels`: §2.2.1 label treatment (uncertainty limits, Table 1
  ranges → NaN), §2.2.2 [Fe/H] weights, Table 2 recommended ranges, cross-match.
- :mod:`~apogee_net.lamost.model`, :mod:`~apogee_net.lamost.losses`,
  :mod:`~apogee_net.lamost.mc`: network, robust loss, MC-dropout inference.
- :mod:`~apogee_net.lamost.training`, :mod:`~apogee_net.lamost.predict`: label tables,
  training and catalogues on the shared :mod:`yso_labels.core.training` /
  :mod:`apogee_net.inference.predict`.
- :mod:`~apogee_net.testing.lamost_spectra`: a documented toy generator of LAMOST-like spectra.

Command line: ``apogee-net lamost ingest|labels|train|predict``.
"""
