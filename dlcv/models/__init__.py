"""Networks: shared UNet blocks, the PB1 conditional UNet, the PB2 face UNet, digit classifiers."""
