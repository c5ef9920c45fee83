"""Thin ComfyUI adapters over motion_core: declarations and translation only, no logic."""
