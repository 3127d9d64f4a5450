"""Every table title the reports print, named once.

A study's report is titled after the table its rows mirror (tables.study_title): one of the
tutorial's tables (layouts.py), a model family's (family_tables.py) or DEFAULT_TITLE; the index
matches studies to the tutorial's tables by these titles. Titles with a `{field}` are str.format
templates filled where the table is made.
"""

# The tutorial's tables (layouts.py: their layouts; the index lists them in TUTORIAL_TABLES' order).
BETA_TITLE = "β-VAE trade-offs"
ARCHITECTURE_TITLE = "Architecture comparison"
LATENT_DIM_TITLE = "Latent dimension impact"
DISENTANGLEMENT_TITLE = "Disentanglement (β-VAE and latent-dimension tables)"
LOSS_TITLE = "Loss comparison"
SCHEDULES_TITLE = "Annealing schedules"
# A study that mirrors none of them nor a model family's table.
DEFAULT_TITLE = "Sweep results"

# Model families with metrics of their own (family_tables.py).
VQ_TITLE = "VQ-VAE: reconstruction and codebook use"
HIERARCHICAL_TITLE = "Hierarchical (ladder) VAE: likelihood by depth"
DISENTANGLEMENT_STUDY_TITLE = "Disentanglement study: metrics by model and strength"
MODEL_COMPARISON_TITLE = "Model comparison under one protocol"
MODEL_COMPARISON_FINDINGS_TITLE = "Which model is best, and by how much"

# The tables every study may have besides its layout's.
SLICE_TITLE = "{title} ({fixed})"  # a tutorial table for one value of the grid's other keys
ALL_METRICS_TITLE = "All metrics"
PUBLISHED_TITLE = "Published versus measured"
ORDERING_TITLE = "Published order versus measured: {quantity}"  # other authors' numbers, by rank
PER_FACTOR_TITLE = "{metric} per factor"  # MIG, SAP
PER_LAYER_TITLE = "{quantity} per layer"  # KL, Active units
DEPTH_CHECK_TITLE = "Depth versus NLL (Sønderby et al. 2016)"
RANK_CORRELATION_TITLE = "Rank correlation between the metrics (Spearman over runs)"
VARIANCE_SOURCES_TITLE = "Variance of each metric: model, strength and seed"
FINDINGS_TITLE = "Locatello et al. 2019 at this scale"
PARETO_TITLE = "Pareto front ({objectives})"
BEST_RUNS_TITLE = "Best runs ({objective}, chosen on the {split} split)"  # a single-objective search
FAILED_RUNS_TITLE = "Failed runs"
PRUNED_RUNS_TITLE = "Pruned runs"
FIGURES_TITLE = "Figures"

# The index page: its Markdown heading and its HTML page's title, and its section on the runs.
INDEX_TITLE = "vaebench reports"
INDEX_RUNS_TITLE = "Runs"
