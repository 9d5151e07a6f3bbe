"""apogee_net: stage 2 of the toolkit, the spectral CNNs.

APOGEE Net (Olney et al. 2020 §3) on apStar spectra: reading (:mod:`apogee_net.apstar`),
an HDF5 store (:mod:`apogee_net.store`), the model (:mod:`apogee_net.model`), training
(:mod:`apogee_net.train`), stratified adaptation (:mod:`apogee_net.adapt`), prediction with
perturbation uncertainties (:mod:`apogee_net.predict`, :mod:`apogee_net.uncertainty`),
evaluation, simulation and YSO science products; and a LAMOST Bayesian-CNN backend
(:mod:`apogee_net.lamost`, Li et al.).
"""

from yso_labels import __version__

__all__ = ["__version__"]
