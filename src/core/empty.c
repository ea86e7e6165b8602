/* Placeholder translation unit for modules that have no sources yet. */
typedef int lmx_empty_translation_unit;
