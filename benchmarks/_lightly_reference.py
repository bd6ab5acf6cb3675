"""The methods assembled from lightly's components, trained by a tiny plain loop.

Used by ``benchmarks/learning.py`` as the reference a bioaug run is compared with. Each
reference method is the paper's recipe built only from lightly's pieces (its losses,
projection/prediction heads, ``update_momentum``, ``deactivate_requires_grad``,
``cosine_schedule``, for MoCo the memory bank of ``NTXentLoss``, for MAE the masked ViT
wrapper, decoder and token-mask utilities) around the same backbone. Everything else is
held equal to the bioaug run it is compared with: the backbone (bioaug's
``build_backbone``, same seed), the store, the data order, the augmentation views (bioaug's
batched pipeline for the protocol, same generator seed), the head sizes and method
hyperparameters, the optimiser (AdamW's β₂ included), learning-rate schedule and number of
steps. Those are read from the bioaug run's checkpoint, so whatever recipe bioaug
resolved is what the reference trains with.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bioaug.augment.pipeline import build_pipeline
from bioaug.augment.protocols import load_protocol
from bioaug.data.store import Store
from bioaug.errors import ConfigError
from bioaug.models import build_backbone
from bioaug.train.data import EpochBatchSampler, steps_per_epoch, to_unit_float


@dataclass
class RunRecipe:
    """What a bioaug run resolved, read back from its checkpoint."""

    method: str
    hparams: dict[str, Any]
    backbone: str
    backbone_kwargs: dict[str, Any]
    protocol: str
    batch_size: int
    seed: int
    total_steps: int
    warmup_steps: int
    base_lr: float
    optimizer: dict[str, Any]  # name, momentum, weight_decay + build_optimizer's options
    #                            (adam_beta2 always; the LARS and bias/norm options when set)
    queue_size: int | None
    steps_per_epoch: int = 1
    grad_clip: float | None = None
    weight_decay_end: float | None = None


def recipe_from_checkpoint(data: dict[str, Any]) -> RunRecipe:
    """The training recipe of a bioaug checkpoint (``read_checkpoint`` output)."""
    cfg = dict(data["config"])
    sched = dict(data["schedule"])
    queue = data["model"].get("queue")
    hp = dict((data.get("method") or {}).get("effective_hparams") or {})
    opt = {"name": cfg["optimizer"], "momentum": cfg["momentum"],
           "weight_decay": cfg["weight_decay"], "adam_beta2": adam_beta2(cfg)}
    # the optimiser options a resolved per-method recipe adds, when the run recorded them
    for key, arg in (("exclude_bias_norm", "exclude_bias_norm"),
                     ("lars_eta", "trust_coefficient"), ("lars_clip", "clip")):
        if cfg.get(key) is not None:
            opt[arg] = cfg[key]
    return RunRecipe(
        method=str(cfg["method"]), hparams=hp, backbone=str(cfg["backbone"]),
        backbone_kwargs=dict(data["backbone"].get("kwargs") or {}),
        protocol=str(cfg["protocol"]), batch_size=int(cfg["batch_size"]),
        seed=int(cfg["seed"]), total_steps=int(sched["total_steps"]),
        warmup_steps=int(sched["warmup_steps"]), base_lr=float(sched["base_lr"]),
        optimizer=opt, queue_size=None if queue is None else int(queue.shape[0]),
        steps_per_epoch=int(sched.get("steps_per_epoch") or 1),
        grad_clip=cfg.get("grad_clip"), weight_decay_end=cfg.get("weight_decay_end"))


def adam_beta2(cfg: dict[str, Any]) -> float:
    """AdamW's β₂ of a run's config: the value it resolved, or the one a run made before
    the option existed used (bioaug's ``IMPLICIT_VALUES``: 0.999)."""
    from bioaug.train.config import IMPLICIT_VALUES

    value = cfg.get("adam_beta2")
    return float(IMPLICIT_VALUES["adam_beta2"] if value is None else value)


# -- the methods from lightly's parts ----------------------------------------------------
class _Ref(nn.Module):
    """backbone + lightly head(s) + lightly loss; ``loss(x0, x1)`` and ``after_step``."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def loss(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, step: int, total: int) -> None:
        """Momentum updates (after the optimiser step ``step`` of ``total``, 1-based)."""

    def before_optimizer_step(self, step: int) -> None:
        """Gradient surgery before optimiser step ``step`` (0-based; DINO's frozen layer)."""

    def lr_scales(self) -> dict[str, float]:
        """Factors on the learning rate of named submodules, as the bioaug method's."""
        return {}


class RefSimCLR(_Ref):
    def __init__(self, backbone: nn.Module, hp: dict[str, Any]) -> None:
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        super().__init__(backbone)
        self.head = SimCLRProjectionHead(backbone.out_dim, hp["proj_hidden_dim"],
                                         hp["proj_output_dim"])
        self.criterion = NTXentLoss(temperature=hp["temperature"])

    def loss(self, x0, x1):
        return self.criterion(self.head(self.backbone(x0)), self.head(self.backbone(x1)))


class RefMoCo(_Ref):
    """MoCo v2: lightly's MoCo head, momentum copies and NT-Xent with a memory bank."""

    def __init__(self, backbone: nn.Module, hp: dict[str, Any], queue_size: int) -> None:
        from lightly.loss import NTXentLoss
        from lightly.models.modules import MoCoProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        super().__init__(backbone)
        self.head = MoCoProjectionHead(backbone.out_dim, hp["proj_hidden_dim"],
                                       hp["proj_output_dim"])
        self.key_backbone = copy.deepcopy(backbone)
        self.key_head = copy.deepcopy(self.head)
        deactivate_requires_grad(self.key_backbone)
        deactivate_requires_grad(self.key_head)
        self.criterion = NTXentLoss(temperature=hp["temperature"],
                                    memory_bank_size=(queue_size, hp["proj_output_dim"]))
        self.m0 = hp["momentum"]
        self.m1 = hp.get("momentum_end")

    def loss(self, x0, x1):
        q = self.head(self.backbone(x0))
        with torch.no_grad():
            k = self.key_head(self.key_backbone(x1))
        return self.criterion(q, k)

    def after_step(self, step, total):
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        m = self.m0 if self.m1 is None else cosine_schedule(step, total, self.m0, self.m1)
        update_momentum(self.backbone, self.key_backbone, m)
        update_momentum(self.head, self.key_head, m)


class RefBYOL(_Ref):
    """BYOL: lightly's projection/prediction heads and negative cosine similarity.

    The loss is the paper's ``Σ_views (2 − 2 cos(p, z))`` written with lightly's
    ``NegativeCosineSimilarity`` (``2 + 2·(−cos)`` for each direction).
    """

    def __init__(self, backbone: nn.Module, hp: dict[str, Any]) -> None:
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        super().__init__(backbone)
        d = hp["proj_output_dim"]
        self.head = BYOLProjectionHead(backbone.out_dim, hp["proj_hidden_dim"], d)
        self.predictor = BYOLPredictionHead(d, hp["pred_hidden_dim"], d)
        self.t_backbone = copy.deepcopy(backbone)
        self.t_head = copy.deepcopy(self.head)
        deactivate_requires_grad(self.t_backbone)
        deactivate_requires_grad(self.t_head)
        self.criterion = NegativeCosineSimilarity()
        self.m0, self.m1 = hp["momentum"], hp.get("momentum_end", 1.0)
        from bioaug.train.config import IMPLICIT_VALUES

        # a run made before the option existed trained its predictor at the run's rate
        self.predictor_lr_scale = float(hp.get(
            "predictor_lr_scale", IMPLICIT_VALUES["method_kwargs.predictor_lr_scale"]))

    def lr_scales(self) -> dict[str, float]:
        return {"predictor": self.predictor_lr_scale}

    def loss(self, x0, x1):
        p0 = self.predictor(self.head(self.backbone(x0)))
        p1 = self.predictor(self.head(self.backbone(x1)))
        with torch.no_grad():
            z0 = self.t_head(self.t_backbone(x0))
            z1 = self.t_head(self.t_backbone(x1))
        return 4.0 + 2.0 * (self.criterion(p0, z1) + self.criterion(p1, z0))

    def after_step(self, step, total):
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        m = cosine_schedule(step, total, self.m0, self.m1)
        update_momentum(self.backbone, self.t_backbone, m)
        update_momentum(self.head, self.t_head, m)


class RefBarlowTwins(_Ref):
    def __init__(self, backbone: nn.Module, hp: dict[str, Any]) -> None:
        from lightly.loss import BarlowTwinsLoss
        from lightly.models.modules import BarlowTwinsProjectionHead

        super().__init__(backbone)
        self.head = BarlowTwinsProjectionHead(backbone.out_dim, hp["proj_hidden_dim"],
                                              hp["proj_output_dim"])
        self.criterion = BarlowTwinsLoss(lambda_param=hp["lambd"], gather_distributed=False)

    def loss(self, x0, x1):
        return self.criterion(self.head(self.backbone(x0)), self.head(self.backbone(x1)))


class RefVICReg(_Ref):
    def __init__(self, backbone: nn.Module, hp: dict[str, Any]) -> None:
        from lightly.loss import VICRegLoss
        from lightly.models.modules import BarlowTwinsProjectionHead

        super().__init__(backbone)
        # lightly's VICReg recipe uses the Barlow Twins projector (3 layers, BN, ReLU)
        self.head = BarlowTwinsProjectionHead(backbone.out_dim, hp["proj_hidden_dim"],
                                              hp["proj_output_dim"])
        self.criterion = VICRegLoss(lambda_param=hp["sim_coeff"], mu_param=hp["std_coeff"],
                                    nu_param=hp["cov_coeff"], eps=hp["eps"])

    def loss(self, x0, x1):
        return self.criterion(self.head(self.backbone(x0)), self.head(self.backbone(x1)))


class RefDINO(_Ref):
    """DINO: lightly's DINOProjectionHead and DINOLoss (centring, teacher temperature),
    momentum copies with lightly's cosine schedule; the teacher sees the largest views.

    The teacher-temperature warm-up and the frozen last layer last as long as in the bioaug
    run (the paper's epochs, capped at a fraction of the run), counted in steps here.
    """

    def __init__(self, backbone: nn.Module, hp: dict[str, Any], spe: int, total: int) -> None:
        from lightly.loss import DINOLoss
        from lightly.models.modules import DINOProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        super().__init__(backbone)
        def head() -> DINOProjectionHead:
            return DINOProjectionHead(backbone.out_dim, hp["hidden_dim"], hp["bottleneck_dim"],
                                      hp["out_dim"], batch_norm=hp["head_batch_norm"],
                                      freeze_last_layer=1, norm_last_layer=hp["norm_last_layer"])

        self.head = head()
        self.t_backbone = copy.deepcopy(backbone)
        self.t_head = head()  # lightly's weight-normed layer cannot be deep-copied
        self.t_head.load_state_dict(self.head.state_dict())
        deactivate_requires_grad(self.t_backbone)
        deactivate_requires_grad(self.t_head)
        self.criterion = DINOLoss(output_dim=hp["out_dim"], teacher_temp=hp["teacher_temp"],
                                  student_temp=hp["student_temp"],
                                  center_momentum=hp["center_momentum"])
        run_epochs = total / max(spe, 1)
        self.warm = spe * min(hp["teacher_temp_warmup_epochs"],
                              hp["teacher_temp_warmup_fraction"] * run_epochs)
        self.freeze = spe * min(hp["freeze_last_layer_epochs"],
                                hp["freeze_last_layer_fraction"] * run_epochs)
        self.t0, self.t1 = hp["teacher_temp_start"], hp["teacher_temp"]
        self.m0, self.m1 = hp["momentum"], hp["momentum_end"]
        self.step = 0

    def loss(self, *views):
        top = max(v.shape[-1] for v in views)
        glob = [v for v in views if v.shape[-1] == top]
        local = [v for v in views if v.shape[-1] != top]
        with torch.no_grad():
            teacher = [self.t_head(self.t_backbone(v)) for v in glob]
        student = [self.head(self.backbone(v)) for v in glob + local]
        temp = self.t1 if self.step >= self.warm else \
            self.t0 + (self.t1 - self.t0) * self.step / self.warm
        return self.criterion(teacher, student, teacher_temp=temp)

    def before_optimizer_step(self, step):
        self.head.cancel_last_layer_gradients(0 if step < self.freeze else 1)

    def after_step(self, step, total):
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        self.step = step
        m = cosine_schedule(step, total + 1, self.m0, self.m1)
        update_momentum(self.backbone, self.t_backbone, m)
        update_momentum(self.head, self.t_head, m)


class RefMAE(_Ref):
    """MAE (He et al. 2022): lightly's ``MaskedVisionTransformerTIMM`` around the backbone's
    own timm ViT, lightly's ``MaskedVisionTransformerDecoderTIMM`` (mask token, fixed
    position embedding, blocks, norm) between a linear embedding and a linear prediction
    head (the MAE code's, initialised as it does: Xavier-uniform weights, zero biases),
    masks from ``random_token_mask`` and the hidden patches picked with ``patchify`` /
    ``get_at_index``; one view (the first).

    The wrapped ViT is the backbone's ``.vit`` itself, so training moves the backbone's
    weights. Held equal to bioaug's MAE: the ViT's initial weights (``weight_initialization
    ="skip"``; lightly's default would re-draw them) and its learned position embedding
    (``pos_embed_initialization="skip"``; lightly's default would overwrite it with a frozen
    sine-cosine one), the decoder's width, depth and heads, the mask ratio and the
    per-patch target normalisation (``norm_pix_loss``: mean and unbiased variance, eps
    1e-6), done here because lightly's loss is a plain mean squared error.

    What differs, all lightly's: the decoder's fixed 2-D sine-cosine position embedding is
    the MAE code's, the same sines and cosines as the one bioaug builds with timm but its
    channels in another order, and it is made once for the grid of the backbone's
    ``img_size``, so the views must be that size (bioaug builds it for any grid); the
    visible patches are ``floor(N·(1 − r))`` where bioaug rounds (the same 12 of 49 and 4 of
    16 patches at the default r = 0.75; 19 against 20 of 49 at r = 0.6).
    """

    def __init__(self, backbone: nn.Module, hp: dict[str, Any]) -> None:
        from lightly.models.modules import (
            MaskedVisionTransformerDecoderTIMM,
            MaskedVisionTransformerTIMM,
        )

        super().__init__(backbone)
        vit = backbone.vit
        self.encoder = MaskedVisionTransformerTIMM(vit=vit, weight_initialization="skip",
                                                   pos_embed_initialization="skip")
        self.encoder.mask_token.requires_grad_(False)  # only visible tokens are encoded
        self.patch_size = int(backbone.patch_size)
        self.img_size = int(backbone.img_size)
        width = int(hp["decoder_dim"])
        self.decoder_embed = nn.Linear(int(backbone.out_dim), width)
        self.decoder = MaskedVisionTransformerDecoderTIMM(
            num_patches=vit.patch_embed.num_patches, embed_dim=width,
            depth=hp["decoder_depth"], num_heads=hp["decoder_heads"],
            num_prefix_tokens=vit.num_prefix_tokens)
        self.prediction_head = nn.Linear(width, self.patch_size ** 2 * int(backbone.in_channels))
        for layer in (self.decoder_embed, self.prediction_head):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.mask_ratio = float(hp["mask_ratio"])
        self.norm_pix = bool(hp["norm_pix_loss"])
        self.criterion = nn.MSELoss()

    def _check_size(self, images: torch.Tensor) -> None:
        """ConfigError unless the views are the ``img_size`` the decoder was built for."""
        h, w = images.shape[-2:]
        if (h, w) != (self.img_size, self.img_size):
            raise ConfigError(f"the lightly MAE reference takes views of the backbone's "
                              f"img_size {self.img_size} px only, got {h}×{w} px",
                              where="backbone_kwargs.img_size",
                              hint=f"set img_size={h} (the protocol's crop size)")

    def loss(self, *views: torch.Tensor) -> torch.Tensor:
        from lightly.models.utils import (
            get_at_index,
            patchify,
            random_token_mask,
            repeat_token,
            set_at_index,
        )

        images = views[0]
        self._check_size(images)
        b, length = images.shape[0], self.encoder.sequence_length
        idx_keep, idx_mask = random_token_mask((b, length), self.mask_ratio,
                                               device=images.device)
        encoded = self.encoder.encode(images, idx_keep=idx_keep)
        tokens = repeat_token(self.decoder.mask_token, (b, length))
        tokens = set_at_index(tokens, idx_keep, self.decoder_embed(encoded).type_as(tokens))
        decoded = self.decoder.decode(self.decoder.add_pos_embed(tokens))
        pred = self.prediction_head(get_at_index(decoded, idx_mask))
        n_prefix = self.encoder.vit.num_prefix_tokens
        target = get_at_index(patchify(images, self.patch_size), idx_mask - n_prefix)
        return self.criterion(pred, normalised_patches(target) if self.norm_pix else target)


def normalised_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each patch ``(…, p²·C)`` less its mean, over the root of its unbiased variance + eps
    (MAE's ``norm_pix_loss`` target)."""
    mean, var = patches.mean(dim=-1, keepdim=True), patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps).sqrt()


def build_reference(recipe: RunRecipe, in_channels: int) -> _Ref:
    """The lightly-assembled method of ``recipe``, with bioaug's backbone (same seed)."""
    torch.manual_seed(recipe.seed)
    backbone = build_backbone(recipe.backbone, in_channels, **recipe.backbone_kwargs)
    hp = recipe.hparams
    builders = {
        "simclr": lambda: RefSimCLR(backbone, hp),
        "moco_v2": lambda: RefMoCo(backbone, hp, int(recipe.queue_size or 4096)),
        "byol": lambda: RefBYOL(backbone, hp),
        "barlow_twins": lambda: RefBarlowTwins(backbone, hp),
        "vicreg": lambda: RefVICReg(backbone, hp),
        "dino": lambda: RefDINO(backbone, hp, recipe.steps_per_epoch, recipe.total_steps),
        "mae": lambda: RefMAE(backbone, hp),
    }
    return builders[recipe.method]()


def train_reference(recipe: RunRecipe, store: Store,
                    on_step: Callable[[int, float], None] | None = None,
                    device: str = "cpu") -> nn.Module:
    """Train the reference for ``recipe.total_steps`` steps; returns its backbone (eval).

    ``on_step(step, loss)``, when given, is called after each optimiser step (1-based) with
    that step's loss. On ``device`` as bioaug's loop trains there: the views drawn with a
    generator on the device, the loss under bf16 autocast on CUDA.
    """
    from bioaug.train.optim import (
        build_optimizer,
        lr_at,
        set_lr,
        set_weight_decay,
        weight_decay_at,
    )

    model = build_reference(recipe, store.n_channels).to(device)
    model.train()
    pipeline = build_pipeline(load_protocol(recipe.protocol), store.n_channels, store.channels)
    generator = torch.Generator(device=device)
    generator.manual_seed(recipe.seed + 1)
    cuda = torch.device(device).type == "cuda"
    o = dict(recipe.optimizer)
    opt = build_optimizer(model, o.pop("name"), recipe.base_lr, o.pop("momentum"),
                          o.pop("weight_decay"), lr_scales=model.lr_scales(), **o)
    decayed = [g for g in opt.param_groups if g["weight_decay"] > 0]
    wd0 = decayed[0]["weight_decay"] if decayed else 0.0
    params = [p for p in model.parameters() if p.requires_grad]
    spe = steps_per_epoch(len(store), recipe.batch_size)
    shape = (store.n_channels, *store.image_size)
    step, epoch = 0, 0
    while step < recipe.total_steps:
        sampler = EpochBatchSampler(len(store), recipe.batch_size, seed=recipe.seed, epoch=epoch)
        for idx in sampler:
            set_lr(opt, lr_at(step, recipe.base_lr, recipe.warmup_steps, recipe.total_steps))
            set_weight_decay(decayed, weight_decay_at(step, recipe.total_steps, wd0,
                                                      recipe.weight_decay_end))
            x = to_unit_float(torch.from_numpy(store.read(idx)).to(device), store.dtype)
            views = pipeline.apply(x, pipeline.sample(len(idx), shape, generator, device))
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = model.loss(*views)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip is not None:
                nn.utils.clip_grad_norm_(params, recipe.grad_clip)
            model.before_optimizer_step(step)
            opt.step()
            step += 1
            model.after_step(step, recipe.total_steps)
            if on_step is not None:
                on_step(step, float(loss.detach()))
            if step >= recipe.total_steps:
                break
        epoch += 1
        assert spe > 0
    return model.backbone.eval()
