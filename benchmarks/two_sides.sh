# Sourced by the *_check.sh scripts that run the default experiment with the code of two
# revisions side by side, the same way: OLD_REV in $WORK/old, NEW_REV in $WORK/new, each with
# its own src/, stages/ and params.yaml (2 epochs, 1 thread), run by `python stages/<name>.py`.
# Needs REPO, PY and WORK set; exports S2S_CACHE (default $WORK/cache).

export S2S_CACHE=${S2S_CACHE:-$WORK/cache} DVC_NO_ANALYTICS=1

prepare_sides() {  # OLD_REV NEW_REV
  mkdir -p "$WORK/old" "$WORK/new"
  local side rev
  for side in old new; do
    rev=$([ $side = old ] && echo "$1" || echo "$2")
    git -C "$REPO" archive "$rev" src stages params.yaml | tar -x -C "$WORK/$side"
    "$PY" -c "import yaml; p = yaml.safe_load(open('$WORK/$side/params.yaml')); p['train'].update(max_epochs=2, threads=1); yaml.safe_dump(p, open('$WORK/$side/params.yaml', 'w'), sort_keys=False)"
  done
}

run_data_stages() {  # both sides' download, clean, spm and tensorize; the installed s2s must not
  local stage side  # shadow a side's own src/ (stages/common.py refuses another copy)
  for stage in download clean spm tensorize; do
    for side in old new; do
      (cd "$WORK/$side" && PYTHONPATH=src "$PY" stages/$stage.py 2> $stage.log) || { cat "$WORK/$side/$stage.log"; exit 1; }
    done
  done
}

train_both() {  # both sides' train stage at once (one thread each)
  (cd "$WORK/old" && PYTHONPATH=src "$PY" stages/train.py > train.log 2>&1) &
  (cd "$WORK/new" && PYTHONPATH=src "$PY" stages/train.py > train.log 2>&1) &
  wait
}
