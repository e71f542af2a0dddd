"""Pod.Cast annotation rounds (`hydrophone-worker podcast prepare`), the successor of OrcaHello's
PrepareDataForPredictionExplorer: score a historical range, write the round's dataset folder, upload it.

round.py   pure: names, annotations, TSV rows, the per-clip JSON document
dataset.py the dataset folder: files written only when their bytes change, the TSV merged without duplicates
prepare.py the scoring loop over the range reader (resumable through a checkpoint in the dataset folder)
upload.py  blob storage: the three containers, retried uploads that never overwrite
cli.py     the click group (imports nothing heavy until a command runs)
"""
