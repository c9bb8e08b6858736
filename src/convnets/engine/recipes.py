"""The papers' training recipes: one named set of :class:`~.config.TrainConfig` fields
per paper, each citing the section or table its numbers come from, with the paper's
headline error and the protocol it was measured with.

Where a paper is silent the recipe's note says so and names what it uses instead (the
authors' released code first). Where a paper used more replicas than one job has, the
recipe gives its ``lr`` for the paper's global batch (``lr_batch``) and the run scales it
linearly to its own (engine/optim.py, ``scaled_lr``). Each recipe names its paper's
augmentation preset (``convnets.data.transforms.PRESETS``).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .config import TrainConfig

__all__ = ["Recipe", "RECIPES", "SCHEDULE_FIELDS", "list_recipes", "recipe_config", "recipes_for"]


@dataclass(frozen=True)
class Recipe:
    """A paper's hyper-parameters. ``settings`` are TrainConfig fields; every field of
    ``SCHEDULE_FIELDS`` is set explicitly by each recipe but ``digits`` (whose values are
    TrainConfig's defaults), so that no recipe inherits the small default's schedule.
    ``reported`` is the paper's headline error and ``protocol`` how it was measured."""

    name: str
    source: str                   # where the numbers come from
    settings: dict                # TrainConfig fields this recipe sets
    notes: str = ""
    reported: str = ""
    protocol: str = ""


SCHEDULE_FIELDS = ("model", "epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay",
                   "schedule", "milestones", "warmup_epochs")


def _recipe(name: str, source: str, notes: str = "", *, reported: str = "", protocol: str = "",
            **settings) -> Recipe:
    return Recipe(name, source, settings, notes, reported, protocol)



# VGG (Simonyan & Zisserman 2015, Sec. 3.1): batch 256, momentum 0.9, weight decay 5e-4,
# lr /10 when the validation accuracy stops improving, 74 epochs.
_VGG = dict(epochs=74, batch_size=256, momentum=0.9, nesterov=False, weight_decay=5e-4,
            schedule="plateau", milestones=[], val_split=10000, plateau_patience=2,
            warmup_epochs=0.0)

# The Inception line (Szegedy et al. 2016 Sec. 8, 2017 Sec. 4): RMSProp (decay 0.9,
# epsilon 1.0), lr 0.045 x0.94 every 2 epochs, clipping at 2.0, label smoothing 0.1, a
# running average of the parameters; 32 images per replica.
_INCEPTION = dict(preset="inception", epochs=100, batch_size=32, lr=0.045,
                  optimizer="rmsprop-tf", rmsprop_decay=0.9, rmsprop_eps=1.0, momentum=0.9,
                  nesterov=False, weight_decay=4e-5, schedule="exp", decay_every=2.0,
                  gamma=0.94, milestones=[], warmup_epochs=0.0, clip_grad_norm=2.0,
                  label_smoothing=0.1, ema=0.9999)

_RESNET50_ERR = "ResNet-50: 22.85% top-1, 6.71% top-5 (He et al. 2016, Table 3)"
_ALEXNET_ERR = "1 CNN: 40.7% top-1, 18.2% top-5 (Krizhevsky et al. 2012, Table 2)"

# ImageNet, DenseNet style (Huang et al. 2017, Section 4.2): batch 256, 90 epochs,
# lr 0.1 divided by 10 at epochs 30 and 60, weight decay 1e-4, Nesterov momentum 0.9
# without dampening, and the augmentation of fb.resnet.torch (datasets/imagenet.lua), on
# which the DenseNet and GUNN Torch code are built: preset `fb-resnet`.
_DENSENET_IMAGENET = dict(preset="fb-resnet", epochs=90, batch_size=256, lr=0.1, momentum=0.9,
                          nesterov=True, weight_decay=1e-4, schedule="step", milestones=[30, 60],
                          warmup_epochs=0.0)

# CIFAR, GUNN (Qiao et al. 2018, Section 6.2): batch 64, lr 0.1, weight decay 1e-4,
# momentum 0.9 without dampening (Nesterov in the authors' train.lua), 300 epochs.
_GUNN_CIFAR = dict(preset="gunn-cifar", epochs=300, batch_size=64, lr=0.1, momentum=0.9,
                   nesterov=True, weight_decay=1e-4, warmup_epochs=0.0)

RECIPES: dict[str, Recipe] = {r.name: r for r in [
    _recipe(
        "digits", "convnets' own small default",
        "ResNet-20 (He et al. 2016, Section 4.2) on the built-in 8x8 digits resized to 32x32 "
        "with the digits augmentation; a few minutes on 2 CPU cores. Chosen on 287 "
        "validation images held out of the training split: ResNet-20 at lr 0.05 for 20 "
        "epochs, 0.35% validation error (lr 0.1: 0.70%); LeNet-5 stays at 1.05% over lr "
        "0.005-0.01, 30-60 epochs, label smoothing and seeds (lr 0.02 or batch 16 "
        "saturates its tanh units), and made 2.22% test error with lr 0.007 for 40 epochs.",
        # TrainConfig's defaults are this recipe; it sets nothing of its own.
    ),
    _recipe(
        "gunn-cifar", "Qiao et al. 2018, Section 6.2; augmentation from the authors' code "
                      "(github.com/joe-siyuan-qiao/GUNN, datasets/cifar10.lua and transforms.lua)",
        "lr /10 at the 150th and 225th epoch counted from 1, as the released train.lua does "
        "(epoch >= 0.5 and 0.75 x nEpochs): after 149 and 224 epochs. Augmentation "
        "`gunn-cifar` is the released code's: flip, mean-colour pad + crop, then the "
        "'Jigsaw' circular shift, which the paper does not describe (it names mirroring "
        "and shifting only: --preset cifar).",
        model="gunn15", **_GUNN_CIFAR, schedule="step", milestones=[149, 224],
        reported="GUNN-15: 4.15% CIFAR-10+, 20.45% CIFAR-100+ (Table 3)",
        protocol="cifar-test, best epoch (the paper's)"),
    _recipe(
        "gunn-cifar-snapshot", "Qiao et al. 2018, Table 3 (GUNN-24 Ensemble, 24 x 6 layers, "
                               "177.6M parameters: 6 snapshots of GUNN-24) and Section 6.3 "
                               "(Snapshot Ensemble, Huang et al. 2017a); Section 6.2 otherwise",
        "6 cosine cycles of 50 epochs restarting at lr 0.1 (Huang et al. 2017a, Eq. 2), one "
        "snapshot at the end of each; `convnets eval RUN` averages their softmax outputs "
        "(published: 3.02% C10, 15.61% C100). The paper gives neither the cycle length nor "
        "the restart lr: 300 epochs / 6 and its CIFAR lr 0.1 are assumed (Huang et al. "
        "report restart lrs 0.1 and 0.2).",
        model="gunn24", **_GUNN_CIFAR, schedule="cosine", milestones=[], snapshot_ensemble=6,
        reported="GUNN-24 Ensemble: 3.02% CIFAR-10+, 15.61% CIFAR-100+ (Table 3)",
        protocol="cifar-test, snapshot average"),
    _recipe(
        "gunn-imagenet", "Qiao et al. 2018, Section 6.2: the DenseNet ImageNet schedule",
        "Huang et al. 2017, Section 4.2: 90 epochs, lr /10 at 30 and 60. Augmentation of "
        "fb.resnet.torch, as the authors' datasets/imagenet.lua (Section 6.1: that of "
        "ResNet, DenseNet and ResNeXt).",
        model="gunn18", **_DENSENET_IMAGENET,
        reported="GUNN-18: 21.65% top-1, 5.87% top-5 (Table 4)", protocol="single-crop 224"),
    _recipe(
        "gunn-imagenet-released", "the authors' code (github.com/joe-siyuan-qiao/GUNN): the "
                                  "README's ImageNet command (-nEpochs 120, -batchSize 256) "
                                  "and train.lua's learningRate",
        "lr 0.1, then 0.01 from epoch 31, 0.001 from 61 and 1e-5 from 91 (counted from 1): "
        "train.lua raises the fourth decay step to two (decay = floor((epoch - 1) / 30), plus "
        "one from 3 on), hence 90 listed twice.",
        model="gunn18", **{**_DENSENET_IMAGENET, "epochs": 120, "milestones": [30, 60, 90, 90]},
        reported="GUNN-18: 21.65% top-1, 5.87% top-5 (Table 4)", protocol="single-crop 224"),
    _recipe(
        "densenet-imagenet", "Huang et al. 2017, Section 4.2",
        "Nesterov momentum 0.9 without dampening; augmentation of fb.resnet.torch, on which "
        "DenseNet's code is built.",
        model="densenet121", **_DENSENET_IMAGENET,
        reported="DenseNet-121: 25.02% top-1, 7.71% top-5 (Table 3)", protocol="single-crop 224"),
    _recipe(
        "resnet-imagenet", "He et al. 2016, Section 3.4 (fixed steps as torchvision's reference); "
                           "augmentation of fb.resnet.torch",
        "The paper divides by 10 on plateaus (about 120 epochs); the common 90-epoch form "
        "divides every 30 epochs. fb.resnet.torch replaces the paper's scale augmentation "
        "(shorter side 256-480) by the 8-100% random-sized crop, which gave it a better "
        "validation error, and adds colour jitter to the paper's PCA lighting.",
        model="resnet50", preset="fb-resnet", epochs=90, batch_size=256, lr=0.1, momentum=0.9,
        nesterov=False, weight_decay=1e-4, schedule="step", milestones=[30, 60],
        warmup_epochs=0.0, reported=_RESNET50_ERR, protocol="10-crop"),
    _recipe(
        "alexnet", "Krizhevsky et al. 2012, Section 5",
        "The paper divides the lr by 10 when validation error stops improving, three times in "
        "about 90 epochs; fixed at epochs 30, 60 and 80 here so that runs are reproducible. "
        "Dropout 0.5 in the first two fully connected layers is part of the model. The paper "
        "initialises biases to 1 in some layers; the model's own initialisation is used.",
        model="alexnet", preset="alexnet", epochs=90, batch_size=128, lr=0.01, momentum=0.9,
        nesterov=False, weight_decay=5e-4, schedule="step", milestones=[30, 60, 80],
        warmup_epochs=0.0, reported=_ALEXNET_ERR, protocol="10-crop"),

    # --- the 1998-2014 networks -----------------------------------------------------
    _recipe(
        "lenet5", "LeCun et al. 1998, Section III.C and Appendix C",
        "20 passes; the global step is 5e-4 for 2 passes, 2e-4 for the next 3, 1e-4 for 3, "
        "5e-5 for 4, 1e-5 after: the same steps (x0.4, x0.5, x0.5, x0.2 at passes 2, 5, 8, "
        "12) applied to SGD with momentum, since the paper's stochastic diagonal "
        "Levenberg-Marquardt (eta / (mu + h_kk)) is not in the engine (engine/optim.py says "
        "why), so its absolute rates do not carry over; lr 0.01 at batch 32 is the digits "
        "recipe's finding for LeNet-5. Per-sample updates become batches of 32. MNIST-style "
        "folders: --data folder:DIR.",
        reported="0.95% MNIST test error without distortions (Section III.C)",
        protocol="mnist-test",
        model="lenet5", epochs=20, batch_size=32, lr=0.01, momentum=0.9, nesterov=False,
        weight_decay=0.0, schedule="step", milestones=[2, 5, 8, 12], gammas="0.4,0.5,0.5,0.2",
        warmup_epochs=0.0),
    _recipe(
        "alexnet-plateau", "Krizhevsky et al. 2012, Section 5",
        "The paper's rule: lr /10 whenever the validation error stopped improving (three "
        "times in about 90 epochs). The ILSVRC validation set is this package's test split, "
        "so the decisions read 10,000 images held out of the training split instead; the "
        "paper gives no patience: 5 epochs. The model is the paper's (LRN, two groups).",
        reported=_ALEXNET_ERR, protocol="10-crop",
        model="alexnet_lrn", preset="alexnet", epochs=90, batch_size=128, lr=0.01, momentum=0.9,
        nesterov=False, weight_decay=5e-4, schedule="plateau", milestones=[], val_split=10000,
        plateau_patience=5, warmup_epochs=0.0),
    _recipe(
        "zfnet", "Zeiler & Fergus 2014, Section 3",
        "Batch 128, lr 0.01 'annealed manually' (the plateau rule of AlexNet, on a held-out "
        "split), momentum 0.9, dropout 0.5, 70 epochs. The paper states no weight decay "
        "(AlexNet's 5e-4 is used) and renormalises filters whose RMS exceeds 0.1, which the "
        "engine does not.",
        reported="one convnet: 38.4% top-1, 16.5% top-5 (Table 2)", protocol="10-crop",
        model="zfnet", preset="alexnet", epochs=70, batch_size=128, lr=0.01, momentum=0.9,
        nesterov=False, weight_decay=5e-4, schedule="plateau", milestones=[], val_split=10000,
        plateau_patience=5, warmup_epochs=0.0),
    _recipe(
        "nin-cifar", "Lin et al. 2014, Sections 4.1-4.2",
        "The paper follows AlexNet's procedure and lowers lr by 10 when accuracy stops "
        "improving (on the training set, it says; here on 5,000 held-out images), with "
        "dropout between the mlpconv layers; it gives neither the lr, the batch nor the "
        "epochs: lr 0.1, batch 128 and 150 epochs are assumed. Its GCN + ZCA whitening "
        "comes with preset nin-cifar.",
        reported="8.81% CIFAR-10 with augmentation, 10.41% without (Table 2)",
        protocol="cifar-test",
        model="nin_cifar", preset="nin-cifar", epochs=150, batch_size=128, lr=0.1,
        momentum=0.9, nesterov=False, weight_decay=1e-4, schedule="plateau", milestones=[],
        val_split=5000, plateau_patience=5, warmup_epochs=0.0),
    *[_recipe(
        f"vgg-{letter}", "Simonyan & Zisserman 2015, Section 3.1 (training) and Table 1",
        "Batch 256, momentum 0.9, weight decay 5e-4, dropout 0.5 in the first two FC "
        "layers, lr 0.01 /10 when the validation accuracy stopped improving (3 times, "
        "stopped after 74 epochs); decisions on 10,000 held-out training images, patience "
        "2 (not in the paper). S = 256 (preset vgg-s256). " + staged,
        reported=err, protocol="single-scale, dense (Q = S)",
        model=model, preset="vgg-s256", lr=0.01, **_VGG)
      for letter, model, err, staged in [
        ("a", "vgg11", "A: 29.6% top-1, 10.4% top-5 (Table 3, S = 256)",
         "Net A is trained from random initialisation."),
        ("d", "vgg16", "D: 27.0% top-1, 8.8% top-5 (Table 3, S = 256)",
         "Staged: start from net A with --init-from RUN_OF_VGG_A (the paper copies A's "
         "first four conv and last three FC layers; by name and shape, the first conv and "
         "the FC layers match)."),
        ("e", "vgg19", "E: 27.3% top-1, 9.0% top-5 (Table 3, S = 256)",
         "Staged like vgg-d: --init-from RUN_OF_VGG_A.")]],
    _recipe(
        "vgg-d-s384", "Simonyan & Zisserman 2015, Section 3.1 (training image size)",
        "S = 384, fine-tuned from the S = 256 net (--init-from RUN_OF_VGG_D) at lr 1e-3; "
        "otherwise as vgg-d. Preset vgg-s384.",
        reported="D: 26.8% top-1, 8.7% top-5 (Table 3, S = 384, Q = 384)",
        protocol="single-scale, dense (Q = S)",
        model="vgg16", preset="vgg-s384", lr=1e-3, **_VGG),
    _recipe(
        "vgg-d-jitter", "Simonyan & Zisserman 2015, Section 3.1 (multi-scale training)",
        "S drawn from [256, 512] per image (preset vgg-jitter), fine-tuned "
        "from the S = 384 net (--init-from RUN_OF_VGG_D_S384); lr 1e-3 as the fixed-S "
        "fine-tuning (the paper gives none for this stage).",
        reported="D: 25.6% top-1, 8.1% top-5 (Table 3, S in [256, 512], Q = 384)",
        protocol="single-scale, dense (Q = 384)",
        model="vgg16", preset="vgg-jitter", lr=1e-3, **_VGG),
    _recipe(
        "googlenet", "Szegedy et al. 2015, Sections 5-6",
        "Asynchronous SGD, momentum 0.9, lr x0.96 every 8 epochs, Polyak averaging of the "
        "final model (the EMA, 0.9999 per step), dropout 0.4 and 0.7 in the auxiliary heads "
        "(weighted 0.3). The paper gives neither the lr, the batch nor the length: lr 0.01 "
        "for batch 256 (scaled linearly) and 120 epochs are assumed. Photometric "
        "distortions: preset inception.",
        reported="1 model, 1 crop: 10.07% top-5 (Table 3)", protocol="single-crop 224",
        model="googlenet", preset="inception", epochs=120, batch_size=32, lr=0.01,
        lr_batch=256, momentum=0.9, nesterov=False, weight_decay=2e-4, schedule="exp",
        decay_every=8.0, gamma=0.96, milestones=[], warmup_epochs=0.0, ema=0.9999,
        model_options="dropout=0.4,dropout_aux=0.7"),
    *[_recipe(
        name, "Szegedy et al. 2016, Section 8 (training methodology) and Section 7 (label "
              "smoothing)" + extra_source,
        "RMSProp (decay 0.9, epsilon 1.0), lr 0.045 x0.94 every 2 epochs, gradient clipping "
        "at 2.0, label smoothing 0.1, evaluation with a running average of the parameters "
        "(EMA 0.9999 per step, TF-slim's). 50 replicas x 32 images: lr 0.045 is for a global "
        "batch of 1600 and scales linearly to the run's. 100 epochs (the paper's figure of "
        "about 100). " + note,
        reported=err, protocol="single-crop 299",
        model=model, lr_batch=1600, **_INCEPTION)
      for name, model, extra_source, err, note in [
        ("inception-v3", "inception_v3", "", "21.2% top-1, 5.6% top-5 (Table 3)",
         "Weight decay 4e-5 is TF-slim's (the paper gives none)."),
        ("se-inception-v3", "se_inception_v3", "; SE blocks: Hu et al. 2018",
         "no published figure for SE-Inception-v3 (Hu et al. report SE-BN-Inception)",
         "The Inception-v3 recipe with SE blocks; Hu et al. train their SE nets by SGD "
         "(recipe senet).")]],
    *[_recipe(
        name, "Szegedy et al. 2017, Section 4 (training methodology)",
        "RMSProp (decay 0.9, epsilon 1.0), lr 0.045 x0.94 every 2 epochs, evaluation with a "
        "running average of the parameters (EMA 0.9999). 20 replicas; the batch is not "
        "given: 32 per replica as Inception-v3 (global 640, scaled linearly), 100 epochs, "
        "clipping at 2.0, label smoothing 0.1 and weight decay 4e-5 as the Inception-v3 "
        "recipe and TF-slim.",
        reported=err, protocol="single-crop 299",
        model=model, lr_batch=640, **_INCEPTION)
      for name, model, err in [
        ("inception-v4", "inception_v4", "20.0% top-1, 5.0% top-5 (Table 2)"),
        ("inception-resnet-v2", "inception_resnet_v2", "19.9% top-1, 4.9% top-5 (Table 2)")]],

    # --- residual networks --------------------------------------------------------------
    _recipe(
        "resnet-paper", "He et al. 2016, Section 3.4",
        "As published: batch 256, lr 0.1 /10 when the error plateaus (on 10,000 held-out "
        "training images; patience 5, not in the paper), up to 60 x 10^4 iterations "
        "(120 epochs), weight decay 1e-4, momentum 0.9, no dropout; shorter side in [256, "
        "480] with PCA lighting (preset resnet-paper). The "
        "resnet-imagenet recipe is fb.resnet.torch's fixed-step form.",
        reported=_RESNET50_ERR, protocol="10-crop",
        model="resnet50", preset="resnet-paper", epochs=120, batch_size=256, lr=0.1,
        momentum=0.9, nesterov=False, weight_decay=1e-4, schedule="plateau", milestones=[],
        val_split=10000, plateau_patience=5, warmup_epochs=0.0),
    *[_recipe(
        name, "He et al. 2016, Section 4.2",
        "Batch 128, lr 0.1 /10 at 32k and 48k iterations, stop at 64k (chosen by the paper on "
        "a 45k/5k split), weight decay 1e-4, momentum 0.9, 4-pixel pad, crop and flip. The "
        "engine stops at epoch boundaries: 164 epochs of 390 steps are 63,960 iterations. "
        + warm,
        reported=err, protocol="cifar-test",
        model=model, preset="cifar", epochs=164, batch_size=128, lr=0.1, momentum=0.9,
        nesterov=False, weight_decay=1e-4, schedule="step", schedule_unit="iter",
        milestones=[32000, 48000], **warm_settings)
      for name, model, err, warm, warm_settings in [
        ("resnet-cifar", "resnet56", "ResNet-56: 6.97% CIFAR-10 (Table 6)", "",
         dict(warmup_epochs=0.0)),
        ("resnet110-cifar", "resnet110", "ResNet-110: 6.43% CIFAR-10, best of 5 (Table 6)",
         "ResNet-110 warms up at lr 0.01 for 400 iterations ('until the training error is "
         "below 80%'), then 0.1.",
         dict(warmup_epochs=400, warmup_mode="constant", warmup_factor=0.1))]],
    *[_recipe(
        name, "He et al. 2016b (Identity Mappings), Section 4 and Appendix",
        "CIFAR as the ResNet paper (Section 4.2 there): batch 128, lr 0.1 /10 at 32k and 48k "
        "iterations, stop at 64k (164 epochs), weight decay 1e-4, momentum 0.9, with its "
        "constant warm-up at 0.01 for 400 iterations.",
        reported=err, protocol="cifar-test",
        model=model, preset="cifar", epochs=164, batch_size=128, lr=0.1, momentum=0.9,
        nesterov=False, weight_decay=1e-4, schedule="step", schedule_unit="iter",
        milestones=[32000, 48000], warmup_epochs=400, warmup_mode="constant", warmup_factor=0.1)
      for name, model, err in [
        ("preact-resnet164-cifar", "preact_resnet164", "5.46% CIFAR-10, 24.33% CIFAR-100 (Table 3)"),
        ("preact-resnet1001-cifar", "preact_resnet1001", "4.92% CIFAR-10, 22.71% CIFAR-100 "
                                                         "(Table 3)")]],
    _recipe(
        "preact-resnet200", "He et al. 2016b (Identity Mappings), Section 5",
        "ImageNet as the ResNet paper but with fixed steps: the authors' released code "
        "(KaimingHe/resnet-1k-layers) is fb.resnet.torch's, lr 0.1 /10 every 30 epochs, "
        "batch 256, weight decay 1e-4; scale augmentation of the ResNet paper (preset "
        "resnet-paper).",
        reported="21.8% top-1, 6.0% top-5 at a 224 crop; 20.7% / 5.3% at 320 (Table 5)",
        protocol="single-crop 224",
        model="preact_resnet200", preset="resnet-paper", epochs=90, batch_size=256,
        lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4, schedule="step",
        milestones=[30, 60], warmup_epochs=0.0),
    *[_recipe(
        name, "Zagoruyko & Komodakis 2016, Section 3 (experimental results); dropout Section 2.4",
        "SGD with Nesterov momentum 0.9 (dampening 0), weight decay 5e-4, batch 128, lr 0.1 "
        "x0.2 at epochs 60, 120 and 160 of 200, dropout 0.3 between the convolutions of "
        "each block; reflection padding (preset wrn-cifar).",
        reported=err, protocol="cifar-test",
        model=model, preset="wrn-cifar", epochs=200, batch_size=128, lr=0.1,
        momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="step",
        milestones=[60, 120, 160], gamma=0.2, warmup_epochs=0.0, model_options="dropout=0.3")
      for name, model, err in [
        ("wrn28-10", "wrn28_10", "WRN-28-10 with dropout: 3.89% CIFAR-10, 18.85% CIFAR-100 "
                                 "(Table 6)"),
        ("wrn40-10", "wrn40_10", "WRN-40-10 with dropout: 3.8% CIFAR-10, 18.3% CIFAR-100 "
                                 "(Section 3)")]],
    _recipe(
        "resnext-imagenet", "Xie et al. 2017, Section 4 (implementation details)",
        "Batch 256 (8 GPUs), lr 0.1 divided by 10 three times on the schedule of "
        "fb.resnet.torch, as the authors' code (facebookresearch/ResNeXt): at epochs 30, 60 "
        "and 90 of 100; weight decay 1e-4, momentum 0.9; fb.resnet.torch's augmentation.",
        reported="ResNeXt-50 (32x4d): 22.2% top-1 (Table 3)", protocol="single-crop 224",
        model="resnext50_32x4d", preset="fb-resnet", epochs=100, batch_size=256, lr=0.1,
        momentum=0.9, nesterov=False, weight_decay=1e-4, schedule="step",
        milestones=[30, 60, 90], warmup_epochs=0.0),
    _recipe(
        "resnext29-cifar", "Xie et al. 2017, Section 5.3 (CIFAR)",
        "Batch 128 (8 GPUs), lr 0.1 /10 at epochs 150 and 225 of 300, weight decay 5e-4, "
        "momentum 0.9; the augmentation of the ResNet paper (pad, crop, flip).",
        reported="ResNeXt-29 16x64d: 3.58% CIFAR-10, 17.31% CIFAR-100 (Table 7)",
        protocol="cifar-test",
        model="resnext29_16x64d", preset="cifar", epochs=300, batch_size=128, lr=0.1,
        momentum=0.9, nesterov=False, weight_decay=5e-4, schedule="step", milestones=[150, 225],
        warmup_epochs=0.0),
    _recipe(
        "stochastic-depth-cifar", "Huang et al. 2016 (stochastic depth), Section 4",
        "ResNet-110, 500 epochs, batch 128, lr 0.1 /10 at epochs 250 and 375, Nesterov "
        "momentum 0.9 (dampening 0), weight decay 1e-4; the linear rule with p_L = 0.5, "
        "drawn once per mini-batch as the authors' code (yueatsprograms/Stochastic_Depth) "
        "does (drop_path_draw=sample for per-sample drop-path).",
        reported="5.25% CIFAR-10 (Table 1; constant depth: 6.41%)", protocol="cifar-test",
        model="resnet110", preset="cifar", epochs=500, batch_size=128, lr=0.1, momentum=0.9,
        nesterov=True, weight_decay=1e-4, schedule="step", milestones=[250, 375],
        warmup_epochs=0.0, model_options="drop_path_rate=0.5,drop_path_draw=batch"),
    *[_recipe(
        name, "Huang et al. 2017 (DenseNet), Section 4.2",
        "Batch 64, 300 epochs, lr 0.1 /10 at 50% and 75% of training, weight decay 1e-4, "
        "Nesterov momentum 0.9 without dampening. " + note,
        reported=err, protocol="cifar-test",
        model="densenet_bc100_k12", epochs=300, batch_size=64, lr=0.1, momentum=0.9,
        nesterov=True, weight_decay=1e-4, schedule="step", milestones=[150, 225],
        warmup_epochs=0.0, **extra)
      for name, note, err, extra in [
        ("densenet-bc-cifar", "Mirroring and shifting, padded in the mean colour as the "
         "authors' code (liuzhuang13/DenseNet), without GUNN's Jigsaw (preset densenet-cifar).",
         "DenseNet-BC (L=100, k=12): 4.51% CIFAR-10+, 22.27% CIFAR-100+ "
         "(Table 2)", dict(preset="densenet-cifar")),
        ("densenet-bc-cifar-noaug", "Without augmentation, with dropout 0.2 after each "
         "convolution but the first.", "DenseNet-BC (L=100, k=12): 5.92% CIFAR-10, 24.15% "
         "CIFAR-100 (Table 2)", dict(preset="none", model_options="drop_rate=0.2"))]],
    _recipe(
        "senet", "Hu et al. 2018, Section 6.1 (implementation details)",
        "SGD momentum 0.9, batch 1024 (on 64 GPUs): lr 0.6 is for that global batch and "
        "scales linearly to the run's; /10 every 30 epochs, 100 epochs from scratch; weight "
        "decay 1e-4 as the authors' prototxt (hujie-frank/SENet); random-size crop and flip.",
        reported="SE-ResNet-50: 23.29% top-1, 6.62% top-5 (Table 2)", protocol="single-crop 224",
        model="seresnet50", preset="imagenet", epochs=100, batch_size=256, lr=0.6,
        lr_batch=1024, momentum=0.9, nesterov=False, weight_decay=1e-4, schedule="step",
        milestones=[30, 60, 90], warmup_epochs=0.0),
    _recipe(
        "dpn", "Chen et al. 2017, Section 5.1 (experiments on ImageNet)",
        "40 GPUs x 32 images; lr /10 when the accuracy saturates (here the validation error "
        "of 10,000 held-out training images, patience 5). Neither the paper nor the "
        "released models (cypw/DPNs) give the starting lr or the length: lr 0.1 for batch "
        "256, scaled linearly, and 120 epochs are assumed. Random HSL: preset dpn.",
        reported="DPN-92 (32x3d): 20.7% top-1, 5.4% top-5 (Table 2)", protocol="single-crop 224",
        model="dpn92", preset="dpn", epochs=120, batch_size=32, lr=0.1, lr_batch=256,
        momentum=0.9, nesterov=False, weight_decay=1e-4, schedule="plateau", milestones=[],
        val_split=10000, plateau_patience=5, warmup_epochs=0.0),
]}


def list_recipes() -> list[str]:
    return list(RECIPES)


def recipes_for(model: str) -> list[Recipe]:
    """The recipes that train ``model`` (as ``convnets info`` names them)."""
    return [r for r in RECIPES.values() if r.settings.get("model", TrainConfig.model) == model]


def recipe_config(name: str, **overrides) -> TrainConfig:
    """The configuration of recipe ``name`` with ``overrides`` (None values ignored)."""
    key = name.strip().lower().replace("_", "-")
    if key not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; `convnets recipes` lists "
                         f"{', '.join(RECIPES)}")
    base = TrainConfig(**{**RECIPES[key].settings, "recipe": key})
    return base.replace(**overrides)
