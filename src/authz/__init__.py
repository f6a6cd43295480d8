"""Policy-as-code authorization for an ML platform."""

__all__: list[str] = []
