"""epick.trainer: train EPicker-style picking models (torch; ``pip install 'epick[train]'``).

Modules, one job each:
- ``network``     DLA-34 + DLA-up/IDA-up neck + CenterNet heads (``NetworkConfig``, narrow variant)
- ``targets``     Gaussian heatmap / offset / size targets (stride-4 geometry of ``epick.runtime.peaks``)
- ``augment``     random crop, flips, quarter turns
- ``data``        micrographs + coordinates -> preprocessed ``Sample``s -> batches
- ``losses``      focal (plain and sparse), L1, distillation, parameter regularisation
- ``exemplars``   representative exemplar set (~200 objects on 1-2 micrographs) per dataset
- ``modelfile``   the ``.epick`` file (safetensors + JSON metadata + exemplars): ``save_model``, ``load_model``
- ``checkpoint``  ``--resume`` checkpoints (safetensors, no pickle)
- ``validate``    validation AP with the runtime's peaks and evaluation
- ``train``       ``TrainConfig``, ``fit`` and the joint / finetune / continual modes
- ``cli``         ``epick train``
"""
