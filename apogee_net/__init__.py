"""apogee_net: stage 2 of the toolkit, the spectral CNNs.

Grouped by concept (see docs/ARCHITECTURE.md):

- :mod:`apogee_net.spectra`: apStar files, the HDF5 store, ingest, simulated spectra;
- :mod:`apogee_net.network`: APOGEE Net (Olney et al. 2020 §3), its training and
  stratified adaptation (§3.4);
- :mod:`apogee_net.inference`: streaming catalogues with perturbation uncertainties (§3.5);
- :mod:`apogee_net.evaluation`: Tables 2–3, σ calibration, figures;
- :mod:`apogee_net.yso`: YSO selection, age bins, regions, figures (§4);
- :mod:`apogee_net.lamost`: the LAMOST Bayesian CNN (Li et al.), a sibling survey;
- :mod:`apogee_net.testing`: generators used by the tests and benchmarks only.
"""

from yso_labels import __version__

__all__ = ["__version__"]
