from .model import TinyViT

__all__ = ["TinyViT"]
