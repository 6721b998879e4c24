"""Receipt OCR: docTR models, image intake, and the receipt parser."""
