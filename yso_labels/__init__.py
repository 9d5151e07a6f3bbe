"""yso_labels: training labels for APOGEE Net (stage 1 of the toolkit).

M-dwarf labels from photometric relations (:mod:`yso_labels.mdwarf`), trusted Payne labels
(:mod:`yso_labels.payne`), YSO labels from a CNN trained on PARSEC synthetic photometry
(:mod:`yso_labels.photcnn`), merged into one table with provenance (:mod:`yso_labels.merge`).
"""

__version__ = "0.1.0"
