"""The tensor work, without FiftyOne: models, augmentation, the training and evaluation protocols,
image loading, the selection methods, colour, and the distillation methods.

Nothing here imports FiftyOne or the layers above (a test checks), so it runs on a machine with
PyTorch alone (a GPU box, a torchrun worker).
"""
