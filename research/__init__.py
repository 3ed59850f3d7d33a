"""Research that stands beside the product: experiments, their recipes and drivers. Nothing in
the product packages (kovr, backend, model_server, finetune) imports it; it may import them."""
