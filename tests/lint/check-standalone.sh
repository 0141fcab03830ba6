#!/bin/bash
# The project stands alone: every Markdown document it names is in the
# repository, so no comment, page or test points at a file a reader of the
# repository cannot open.
#   check-standalone.sh SOURCE_DIR
set -euo pipefail
cd "$1"
status=0
while IFS=: read -r file line doc; do
    if [ ! -e "$doc" ] && [ ! -e "$(dirname "$file")/$doc" ]; then
        echo "$file:$line: names $doc, which is not in the repository" >&2
        status=1
    fi
done < <(grep -rnoE --exclude-dir=.git --exclude-dir='build*' '\b[A-Za-z0-9_./-]*[A-Z][A-Za-z0-9_-]*\.md\b' \
             --include='*' . | sed 's|^\./||')
exit $status
