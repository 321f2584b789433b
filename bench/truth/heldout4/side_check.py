"""Side check, NOT used for any label: is gru_frozen_embed_dict's failure due to the frozen
embedding or to the plain GRU on an 80-step dependency? Same protocol, Adam seed 0,
with the no_grad around the embedding removed."""
import sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).parent))
import oracle

mod = oracle.load(Path(__file__).parent / "models" / "gru_frozen_embed_dict.py")


class Unfrozen(mod.FrozenEmbedGRU):
    def forward(self, tokens, mask):
        emb = self.embed(tokens) * mask.unsqueeze(-1)
        out, h = self.gru(emb)
        return {"logits": self.head(h[-1]), "states": out}


print("gru_frozen_embed_dict with trainable embedding, adam seed 0:",
      oracle.train_run(mod, lambda: Unfrozen(mod.GRUConfig()), "adam", 0), flush=True)
