"""Thin ComfyUI V3 adapters. The only package that imports ComfyUI."""
