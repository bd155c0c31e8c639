"""The detectors' settings and the `tocsin.detect` section live in service/config/detect.py (a section of the
configuration, validated by service.config at load time); this name stays so that imports of it keep working."""
from service.config.detect import (METHODS, DetectorParams, DetectSection, QueryConfig, parse_section, section_errors,
                                   seconds)

__all__ = ["METHODS", "DetectorParams", "DetectSection", "QueryConfig", "parse_section", "section_errors", "seconds"]
