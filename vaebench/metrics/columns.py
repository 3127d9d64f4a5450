"""Result column names for metrics, shared by metrics/, results.py and report/. Units in comments."""

RECON_MSE = "recon_mse"  # per pixel: mean over pixels and test images of (x - E[x|z=mu])^2
SSIM = "ssim"  # mean over test images, in [-1, 1]
SSIM_SIGMA = "ssim_sigma"  # Gaussian window sigma used (pixels)
SSIM_WIN_SIZE = "ssim_win_size"  # window side (pixels)
NEG_ELBO = "neg_elbo"  # nats per example: RECON_NLL + KL (beta = 1, one z sample per image)
RECON_NLL = "recon_nll"  # nats per example: -log p(x|z), z ~ q(z|x), summed over pixels
KL = "kl"  # nats per example: KL(q(z|x) || N(0, I)) summed over latent dims
KL_PER_DIM = "kl_per_dim"  # list, nats per example for each latent dim; sums to KL
ACTIVE_UNITS = "active_units"  # count of latent dims with Var_x(E_q[z_u|x]) > threshold
ACTIVE_UNITS_THRESHOLD = "active_units_threshold"
