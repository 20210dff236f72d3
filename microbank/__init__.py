"""microbank: a reference bank built as microservices, shipped as one package."""
