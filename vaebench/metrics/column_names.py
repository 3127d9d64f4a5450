"""The built-in metrics' result column names, shared by metrics/ and report/. Units in comments; each
metric declares its columns' dtype, unit, direction and label where it registers (metrics/declarations.py)."""

RECON_MSE = "recon_mse"  # per pixel: mean over pixels and test images of (x - E[x|z=mu])^2
SSIM = "ssim"  # mean over test images, in [-1, 1]
SSIM_SIGMA = "ssim_sigma"  # Gaussian window sigma used (pixels)
SSIM_WIN_SIZE = "ssim_win_size"  # window side (pixels)
NEG_ELBO = "neg_elbo"  # nats per example: RECON_NLL + KL (beta = 1, one z sample per image)
RECON_NLL = "recon_nll"  # nats per example: -log p(x|z), z ~ q(z|x), summed over pixels
KL = "kl"  # nats per example: KL(q(z|x) || p(z)) summed over latent dims (the model's KL at the decoded z)
KL_PER_DIM = (
    "kl_per_dim"  # list, nats per example for each latent dim; sums to KL (null when the KL does not decompose)
)
ACTIVE_UNITS = "active_units"  # count of latent dims with Var_x(E_q[z_u|x]) > threshold
ACTIVE_UNITS_THRESHOLD = "active_units_threshold"
KL_PER_LAYER = (
    "kl_per_layer"  # list, nats per example for each stochastic layer (bottom first); sums to KL up to MC noise
)
ACTIVE_UNITS_PER_LAYER = "active_units_per_layer"  # list: ACTIVE_UNITS of each stochastic layer, bottom first
FID = "fid"  # Fréchet distance: samples from the prior vs test images, on FID_EXTRACTOR's features
FID_RECON = "fid_recon"  # the same for reconstructions of the test images
FID_EXTRACTOR = "fid_extractor"  # e.g. vaebench-classifier-<key>-<weights hash> or inception-v3-compat
FID_WEIGHTS_SHA256 = "fid_weights_sha256"  # SHA-256 of the extractor's weights file (null: torch-fidelity's download)
FID_FEATURE_LAYER = "fid_feature_layer"  # penultimate (classifier, 128-d) or 2048 (Inception pool)
FID_SAMPLES = "fid_samples"  # images on each side
FID_REFERENCE = "fid_reference"  # which real images: test[:n]
TORCH_FIDELITY_VERSION = "torch_fidelity_version"
CLASSIFIER_ACCURACY = "classifier_test_accuracy"  # test accuracy of the classifier extractor, in [0, 1]
KID = "kid"  # kernel inception distance (torch-fidelity, cubic polynomial kernel, 100 subsets)
KID_STD = "kid_std"
IS = "is_score"  # Inception Score of the samples with the extractor's classifier (10 splits)
IS_STD = "is_score_std"
SAMPLE_CLASS_FREQ = "sample_class_freq"  # list: fraction of samples the classifier assigns to each class
RECON_MSE_PER_CLASS = "recon_mse_per_class"  # list: recon MSE per pixel, by true class of the test image
RECON_NLL_PER_CLASS = "recon_nll_per_class"  # list: -log p(x | z = mu(x)), nats per example, by class
NLL_IS = "nll_is"  # nats per example: mean over images of -log p(x), importance sampled, k = NLL_K
NLL_IS_STDERR = "nll_is_stderr"  # nats per example: standard error of NLL_IS over the images
NLL_K = "nll_k"  # importance samples per image
NLL_EXAMPLES = "nll_examples"  # test images in NLL_IS (the first N of the split)
MIG = "mig"  # Mutual Information Gap (Chen et al. 2018), in [0, 1]: mean over factors of the gap between the two
#               latents most informative about the factor, over the factor's entropy (20-bin discretized means)
SAP = "sap"  # Separated Attribute Predictability (Kumar et al. 2018), in [0, 1]: mean over factors of the gap
#              between the two latents that best predict the factor (accuracy or R^2): vaebench's convention
#              by factor kind (R^2 for ordered factors), not comparable with published SAP
SAP_DLIB = "sap_dlib"  # SAP in disentanglement_lib's convention (every factor classified by a LinearSVC, the
#                        latent as it is): the SAP of published numbers
MIG_PER_FACTOR = "mig_per_factor"  # list, in DISENTANGLEMENT_FACTORS order: each factor's normalized gap
SAP_PER_FACTOR = "sap_per_factor"  # list, in DISENTANGLEMENT_FACTORS order: each factor's score gap
SAP_DLIB_PER_FACTOR = "sap_dlib_per_factor"  # list, in DISENTANGLEMENT_FACTORS order: each factor's SAP_DLIB gap
DISENTANGLEMENT_FACTORS = "disentanglement_factors"  # list of factor names, e.g. shape, scale, orientation, x, y
MIG_SAMPLES = "mig_samples"  # test images MIG was computed on
MIG_BINS = "mig_bins"  # equal-width bins per latent
SAP_TRAIN_SAMPLES = "sap_train_samples"  # test images SAP's per-latent predictors were fit on
SAP_TEST_SAMPLES = "sap_test_samples"  # other test images SAP's classifiers were scored on
DISENTANGLEMENT_SEED = "disentanglement_seed"  # seed of the MIG and SAP image subsets
# The other factor scores (metrics/factor_scores.py), each with its settings in sibling columns:
DCI_DISENTANGLEMENT = "dci_disentanglement"  # DCI (Eastwood & Williams 2018), in [0, 1]
DCI_COMPLETENESS = "dci_completeness"  # in [0, 1]
DCI_INFORMATIVENESS = "dci_informativeness"  # test accuracy of the per-factor boosted trees, mean over factors
DCI_INFORMATIVENESS_TRAIN = "dci_informativeness_train"  # the same on their training codes
DCI_TRAIN_SAMPLES = "dci_train_samples"  # test images the trees were fit on
DCI_TEST_SAMPLES = "dci_test_samples"  # other test images they were scored on
DCI_IMPORTANCE = "dci_importance"  # the importance model, e.g. "GradientBoostingClassifier(...)"
FACTORVAE_SCORE = "factorvae_score"  # FactorVAE score (Kim & Mnih 2018): eval accuracy of the majority vote
FACTORVAE_TRAIN_ACCURACY = "factorvae_train_accuracy"  # the majority vote's accuracy on its own votes
FACTORVAE_BATCH_SIZE = "factorvae_batch_size"  # images per vote (one factor fixed)
FACTORVAE_TRAIN_VOTES = "factorvae_train_votes"  # votes the majority-vote classifier is built from
FACTORVAE_EVAL_VOTES = "factorvae_eval_votes"  # other votes it is scored on
FACTORVAE_VARIANCE_SAMPLES = "factorvae_variance_samples"  # images of the global variance per latent
BETAVAE_SCORE = "betavae_score"  # β-VAE score (Higgins et al. 2017): eval accuracy of the linear classifier
BETAVAE_TRAIN_ACCURACY = "betavae_train_accuracy"  # its accuracy on its training points
BETAVAE_BATCH_SIZE = "betavae_batch_size"  # image pairs per point
BETAVAE_TRAIN_POINTS = "betavae_train_points"  # points the classifier is fit on
BETAVAE_EVAL_POINTS = "betavae_eval_points"  # other points it is scored on
BETAVAE_CLASSIFIER = "betavae_classifier"  # the classifier, e.g. "LogisticRegression(...)"
MODULARITY = "modularity"  # Ridgeway & Mozer 2018, in [0, 1]
EXPLICITNESS = "explicitness"  # Ridgeway & Mozer 2018: test ROC-AUC of a logistic regression per factor, mean
EXPLICITNESS_TRAIN = "explicitness_train"  # the same on its training codes
MODULARITY_TRAIN_SAMPLES = "modularity_train_samples"  # test images of the MI (modularity) and of the fit
MODULARITY_TEST_SAMPLES = "modularity_test_samples"  # other test images explicitness is scored on
MODULARITY_BINS = "modularity_bins"  # equal-width bins per latent for the MI
GAUSSIAN_TOTAL_CORRELATION = "gaussian_total_correlation"  # nats: TC of a Gaussian with the codes' covariance
GAUSSIAN_WASSERSTEIN_CORRELATION = "gaussian_wasserstein_correlation"  # W2^2 to the product of its marginals
GAUSSIAN_WASSERSTEIN_CORRELATION_NORM = "gaussian_wasserstein_correlation_norm"  # the same over the trace
MUTUAL_INFO_SCORE = "mutual_info_score"  # nats: mean pairwise MI between the binned latents
UNSUPERVISED_SAMPLES = "unsupervised_samples"  # test images of the unsupervised scores
UNSUPERVISED_BINS = "unsupervised_bins"  # equal-width bins per latent for mutual_info_score
UNSUPERVISED_REPRESENTATION = "unsupervised_representation"  # "sampled" (z ~ q(z|x)) or "mean" (mu(x))
CODEBOOK_PERPLEXITY = "codebook_perplexity"  # codes: exp of the entropy of the average code usage over the test split
CODES_USED_FRACTION = "codes_used_fraction"  # fraction of the codebook's K codes chosen at least once on the test split
