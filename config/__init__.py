"""Configuration: every setting comes from one environment variable, validated at start-up."""

from config.settings import SETTINGS, ConfigError, Settings, load_settings

__all__ = ["SETTINGS", "ConfigError", "Settings", "load_settings"]
