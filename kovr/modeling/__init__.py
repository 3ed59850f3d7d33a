"""Model code that training (finetune) and serving (model_server) share, so that neither imports the other.

- :mod:`kovr.modeling.align_config`: the align checkpoint's files and :class:`AlignConfig`;
- :mod:`kovr.modeling.projector`: the projector factory and the grid position code;
- :mod:`kovr.modeling.align_model`: :class:`AlignModel` (vision encoder + projector), save and load;
- :mod:`kovr.modeling.images`: CLIP-style preprocessing and data-URI decoding;
- :mod:`kovr.modeling.image_prompt`: where an image goes in a prompt (the splice rule);
- :mod:`kovr.modeling.language_model`: the language model that goes with an align checkpoint;
- :mod:`kovr.modeling.bpe`: the byte-level BPE trainer of every tiny model.

Importing this package is light; its modules import torch, transformers and PIL as they need them,
so the web app (which imports ``kovr.settings``) never loads them.
"""

# A served model folder's own record (the demo model writes it; model_server reads ``demo``).
META_FILE = "kovr_model.json"
