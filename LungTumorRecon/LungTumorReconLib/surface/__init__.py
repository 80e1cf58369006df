"""3D reconstruction of the tumour: marching cubes, fairing, shape interpolation and the GAN."""
