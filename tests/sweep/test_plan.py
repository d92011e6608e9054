"""A sweep spec's mistakes fail before the first trial, each with a message that says what to fix."""

from pathlib import Path

import pytest

from nestbench.spec import SpecError, load_spec
from nestbench.sweep import Categorical, FloatRange, IntRange, Sweep
from nestbench.sweep.plan import load_sweep
from nestbench.sweep.samplers import check_sampler_fits

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_sweep_spec_plans():
    plan = load_sweep(ROOT / "experiments" / "quickstart" / "sweep.gin")
    assert plan.experiment_spec.parent == (ROOT / "experiments" / "quickstart").resolve()
    assert plan.objective == f"dev/{plan.experiment.task.metrics[0].name}" and plan.direction == "maximize"
    assert {p.binding for p in plan.sweep.space} >= {"OptimizerSetup.lr"}
    check_sampler_fits(plan.sweep)


def test_plan_reads_space_objective_and_experiment(sweep_spec, tiny_experiment):
    plan = load_sweep(sweep_spec())
    assert plan.experiment_spec == tiny_experiment.resolve()
    assert [type(p) for p in plan.sweep.space] == [FloatRange, Categorical]
    assert plan.objective == "dev/intent_acc" and plan.direction == "maximize"
    assert plan.study == "quickstart_slurp_frozen-sweep" and plan.experiment.name == "quickstart_slurp_frozen"
    assert plan.sweep.sampler == "tpe" and plan.sweep.pruner == "median"


def test_scoped_binding_of_a_macro_configurable_is_found(sweep_spec):
    spec = sweep_spec(
        "Experiment.notes = {'sweep': @Sweep()}\nSweep.space = [@d/IntRange()]\n"
        "d/IntRange.binding = 'make_tiny_nest.d_model'\nd/IntRange.low = 16\nd/IntRange.high = 48\n"
        "d/IntRange.step = 16\n"
    )
    assert load_sweep(spec).sweep.space[0].grid() == [16, 32, 48]


@pytest.mark.parametrize(
    ("low", "high", "message"),
    [(1e-3, 1e-3, "empty range"), (1e-2, 1e-4, "inverted range")],
)
def test_empty_or_inverted_range(sweep_spec, low, high, message):
    spec = sweep_spec(
        "Experiment.notes = {'sweep': @Sweep()}\nSweep.space = [@lr/FloatRange()]\n"
        f"lr/FloatRange.binding = 'OptimizerSetup.lr'\nlr/FloatRange.low = {low}\nlr/FloatRange.high = {high}\n"
    )
    with pytest.raises(SpecError, match=message) as err:
        load_sweep(spec)
    assert "OptimizerSetup.lr" in str(err.value) and spec.name in str(err.value)  # names the binding and file


def test_range_checks_from_python():
    with pytest.raises(ValueError, match="inverted"):
        IntRange("TrainerSetup.batch_size", 16, 8)
    with pytest.raises(ValueError, match="log range needs low > 0"):
        FloatRange("OptimizerSetup.lr", 0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="non-empty"):
        Categorical("SluTask.dropout", [])
    with pytest.raises(ValueError, match="repeated"):
        Categorical("SluTask.dropout", [0.1, 0.1])
    with pytest.raises(ValueError, match="not a whole number of steps"):
        FloatRange("SluTask.dropout", 0.0, 0.25, step=0.1)
    with pytest.raises(ValueError, match="not a whole number of steps"):
        IntRange("SluTask.d_model", 32, 100, step=32)
    assert FloatRange("SluTask.dropout", 0.0, 0.3, step=0.1).grid() == [0.0, 0.1, 0.2, 0.3]
    with pytest.raises(ValueError, match="swept twice"):
        Sweep(space=[FloatRange("OptimizerSetup.lr", 1e-4, 1e-2), FloatRange("OptimizerSetup.lr", 1e-3, 1e-2)])


def test_binding_the_spec_does_not_have_suggests_a_fix(sweep_spec):
    spec = sweep_spec(
        "Experiment.notes = {'sweep': @Sweep()}\nSweep.space = [@lr/FloatRange()]\n"
        "lr/FloatRange.binding = 'OptimizerSetup.lrr'\nlr/FloatRange.low = 1e-4\nlr/FloatRange.high = 1e-2\n"
    )
    with pytest.raises(SpecError, match=r"'OptimizerSetup.lrr' is not a binding.*\n.*did you mean 'OptimizerSetup.lr'"):
        load_sweep(spec)


def test_binding_of_a_configurable_the_experiment_does_not_use(sweep_spec):
    spec = sweep_spec(
        "Experiment.notes = {'sweep': @Sweep()}\nSweep.space = [@n/IntRange()]\n"
        "n/IntRange.binding = 'SlurpData.n_train'\nn/IntRange.low = 8\nn/IntRange.high = 16\n"
    )
    with pytest.raises(SpecError, match=r"did you mean 'MiniSlurpData.n_train'"):
        load_sweep(spec)


def test_float_range_on_an_int_parameter(sweep_spec):
    spec = sweep_spec(
        "Experiment.notes = {'sweep': @Sweep()}\nSweep.space = [@e/FloatRange()]\n"
        "e/FloatRange.binding = 'TrainerSetup.max_epochs'\ne/FloatRange.low = 1.0\ne/FloatRange.high = 4.0\n"
    )
    with pytest.raises(SpecError, match="takes an int; sweep it with IntRange"):
        load_sweep(spec)


def test_objective_the_task_does_not_produce(sweep_spec):
    spec = sweep_spec(extra="Sweep.objective = 'dev/intent_accuracy'")
    with pytest.raises(SpecError, match=r"reports no metric 'intent_accuracy'; did you mean 'dev/intent_acc'"):
        load_sweep(spec)


def test_test_split_objective_is_refused(sweep_spec):
    spec = sweep_spec(extra="Sweep.objective = 'test/intent_acc'")
    with pytest.raises(SpecError, match=r"sweeps optimise a dev metric, not 'test'.*use 'dev/intent_acc'"):
        load_sweep(spec)


def test_direction_against_the_metric_is_refused(sweep_spec):
    spec = sweep_spec(extra="Sweep.direction = 'minimize'")
    with pytest.raises(SpecError, match="better when higher"):
        load_sweep(spec)


def test_sweep_spec_may_not_quietly_change_the_experiment(sweep_spec):
    with pytest.raises(SpecError, match=r"changes the experiment it sweeps \(TrainerSetup.max_epochs\)"):
        load_sweep(sweep_spec(extra="TrainerSetup.max_epochs = 3"))


def test_not_a_sweep_spec(tiny_experiment):
    with pytest.raises(SpecError, match="not a sweep spec"):
        load_sweep(tiny_experiment)


def test_which_include_is_the_experiment(sweep_spec, tiny_experiment, tmp_path):
    other = tmp_path / "other.gin"
    other.write_text("TrackingSetup.project = 'nestbench'\n")
    spec = sweep_spec()
    spec.write_text(f"include '{other}'\n" + spec.read_text())
    with pytest.raises(SpecError, match="2 includes; set Sweep.experiment"):
        load_sweep(spec)
    spec.write_text(spec.read_text() + f"Sweep.experiment = '{tiny_experiment}'\n")
    assert load_sweep(spec).experiment_spec == tiny_experiment.resolve()


def test_sampler_must_fit_the_space(sweep_spec):
    grid = load_sweep(sweep_spec(extra="Sweep.sampler = 'grid'"))
    with pytest.raises(ValueError, match="grid' needs discrete values; give OptimizerSetup.lr a step"):
        check_sampler_fits(grid.sweep)
    cma = load_sweep(sweep_spec(extra="Sweep.sampler = 'cmaes'"))
    with pytest.raises(ValueError, match="SluTask.dropout is categorical"):
        check_sampler_fits(cma.sweep)
    with pytest.raises(SpecError, match="Sweep.sampler = 'bayes'"):
        load_sweep(sweep_spec(extra="Sweep.sampler = 'bayes'"))


def test_sweep_spec_is_still_an_experiment_spec(sweep_spec):
    loaded = load_spec(sweep_spec())
    assert isinstance(loaded.experiment.notes["sweep"], Sweep)
    assert "Experiment.name = 'quickstart_slurp_frozen'" in loaded.operative_config


def test_prune_on_dev_loss_is_reported_negated_in_a_maximising_study(sweep_spec):
    plan = load_sweep(sweep_spec(extra="Sweep.prune_on = 'dev/loss'"))
    assert (plan.prune_on, plan.prune_sign, plan.direction) == ("dev/loss", -1, "maximize")
    assert plan.definition()["prune_on"] == "dev/loss"
    same = load_sweep(sweep_spec(name="same", extra="Sweep.prune_on = 'slu_f1'"))
    assert (same.prune_on, same.prune_sign) == ("dev/slu_f1", 1)
    default = load_sweep(sweep_spec(name="default"))
    assert (default.prune_on, default.prune_sign) == (default.objective, 1)


def test_prune_on_a_metric_the_task_does_not_log(sweep_spec):
    with pytest.raises(SpecError, match=r"Sweep.prune_on 'dev/los'.*did you mean 'dev/loss'"):
        load_sweep(sweep_spec(extra="Sweep.prune_on = 'dev/los'"))
    with pytest.raises(SpecError, match=r"Sweep.prune_on = 'test/loss': sweeps optimise a dev metric"):
        load_sweep(sweep_spec(name="test_split", extra="Sweep.prune_on = 'test/loss'"))
