"""Look inside trained recurrent networks: trajectories, PCA, slow points, speed vs accuracy, regularisers, report.

Everything here sees a model only through the model contract (``step``, ``initial_state``,
``flatten_state``, ``unflatten_state``): ``F(h, I) = flatten_state(step(I, unflatten_state(h))[1])``.
It follows Haviv, Rivkind & Barak, "Understanding and Controlling Memory in Recurrent Neural Networks"
(ICML 2019), generalised to every model of the library. The DNC memory maps and RIMs module maps live in
their own submodules (``mnemonet.analysis.memory_maps``, ``mnemonet.analysis.module_maps``), imported on use.
"""

from mnemonet.analysis.dynamics import jacobians, speed, transition
from mnemonet.analysis.pca import PCA
from mnemonet.analysis.plots import (
    plot_accuracy_vs_delay,
    plot_eigenvalues,
    plot_pca_trajectories,
    plot_slow_points,
    plot_speed_vs_accuracy,
    plot_training_curves,
    read_metrics,
)
from mnemonet.analysis.regularizers import (
    AnchorPull,
    SpeedRegularizer,
    TaskRegularizer,
    TrajectorySpeedPenalty,
    answer_offset,
    class_centres_of_mass,
    memory_mask,
    speed_regularizer_from_trajectories,
)
from mnemonet.analysis.report import (
    Section,
    analysis_sections,
    rebuild_report,
    save_sections,
    training_section,
    write_report,
)
from mnemonet.analysis.slow_points import SlowPoints, find_slow_points, outliers
from mnemonet.analysis.speed import (
    class_slow_points,
    per_class_accuracy,
    rankdata,
    slowest_per_class,
    spearman,
    speed_vs_accuracy,
)
from mnemonet.analysis.trajectories import (
    AFTER,
    BEFORE,
    DELAY,
    IMAGE,
    PADDING,
    PHASE_NAMES,
    Trajectories,
    phase_labels,
    run_trajectories,
    sample_rows,
    states_at,
)

__all__ = [
    "AFTER", "BEFORE", "DELAY", "IMAGE", "PADDING", "PCA", "PHASE_NAMES", "AnchorPull", "Section", "SlowPoints",
    "SpeedRegularizer", "TaskRegularizer", "Trajectories", "TrajectorySpeedPenalty", "analysis_sections",
    "answer_offset", "class_centres_of_mass", "class_slow_points", "find_slow_points", "jacobians", "memory_mask",
    "outliers", "per_class_accuracy", "phase_labels", "plot_accuracy_vs_delay", "plot_eigenvalues",
    "plot_pca_trajectories", "plot_slow_points", "plot_speed_vs_accuracy", "plot_training_curves", "rankdata",
    "read_metrics", "rebuild_report", "run_trajectories", "sample_rows", "save_sections", "slowest_per_class",
    "spearman", "speed", "speed_regularizer_from_trajectories", "speed_vs_accuracy", "states_at",
    "training_section", "transition", "write_report",
]  # fmt: skip
