"""The cost benchmark behind ``tools/benchmark.py``: MAE, the wrapper with
the attack off, Fast AEMIM and AEMIM side by side (the paper's relative
pre-training time per epoch); with ``--suite survey``, the survey's
adversaries each against its plain algorithm.

* :mod:`.variants`: presets, variants, building one model per variant;
* :mod:`.timing`: training iterations timed in interleaved rounds, FLOPs,
  the matrix-product peak;
* :mod:`.phases`: profiled iterations split into the training step's phases;
* :mod:`.memory`: peak resident memory on a CPU;
* :mod:`.report`: the tables, targets and fits;
* :mod:`.survey`: the survey's adversaries each against its plain
  algorithm, from the shipped CIFAR-10 configs, and their FLOP floors
  (``tools/benchmark.py --suite survey``).

``tools/benchmark.py`` is the command line (processes, allocator settings,
JSON output).
"""
from ..models.profiling import PHASES
from .memory import MEMORY_TUNABLES, memory_child, reset_peak_rss
from .phases import profile_phases
from .report import (check_targets, format_noise, format_phases,
                     format_survey_ops, format_survey_table, format_table,
                     linear_fit, rep_ratio_range)
from .survey import (FLOOR_TOLERANCE, QUIET_CORES, SURVEY_PAIRS,
                     SURVEY_PRESETS, SurveyPair, build_survey_runners,
                     count_flops, excess_over_floor, profile_survey_ops,
                     select_survey_pairs, survey_rows)
from .timing import (Runner, build_runners, cpu_has_native_bf16, make_batch,
                     matmul_peak_tflops, time_variants)
from .variants import (ATTACK_AMP_VARIANTS, BASE_VARIANTS, PAPER_DECODER,
                       PRESETS, SWEEP_VARIANTS, TARGETS, Variants,
                       build_variant, mae_config, select_variants)

__all__ = [
    'PHASES', 'MEMORY_TUNABLES', 'memory_child', 'reset_peak_rss',
    'profile_phases', 'check_targets', 'format_noise', 'format_phases',
    'format_survey_ops', 'format_survey_table', 'format_table',
    'linear_fit', 'rep_ratio_range', 'FLOOR_TOLERANCE', 'QUIET_CORES',
    'SURVEY_PAIRS',
    'SURVEY_PRESETS', 'SurveyPair', 'build_survey_runners', 'count_flops',
    'excess_over_floor', 'profile_survey_ops', 'select_survey_pairs',
    'survey_rows', 'Runner',
    'build_runners', 'cpu_has_native_bf16', 'make_batch',
    'matmul_peak_tflops', 'time_variants', 'ATTACK_AMP_VARIANTS',
    'BASE_VARIANTS', 'PAPER_DECODER', 'PRESETS', 'SWEEP_VARIANTS', 'TARGETS',
    'Variants', 'build_variant', 'mae_config', 'select_variants'
]
