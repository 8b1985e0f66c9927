"""Fiscal till firmware."""
