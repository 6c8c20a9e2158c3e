# Index, check and publish a study: `make -f study.mk STUDY=/data/study` (docs/operations.md).
# From cron, nightly:  15 2 * * *  make -s -f /etc/kbucket/study.mk STUDY=/data/study publish
# Each target prints JSON; a dataset with errors stops the run (kb-check exits 1).
STUDY ?= .
OUT ?= $(STUDY)/.kbucket/published
KB ?=

.PHONY: all index check publish

all: publish

# kb-index: the SHA-1 of every file (cached: only changed files are read again). A running kb-host
# sees the changes by itself; this makes them ready, and lists what is shareable.
index:
	mkdir -p $(OUT)
	$(KB)kb-index $(STUDY) > $(OUT)/index.ndjson

# kb-check: every dataset of the study, with the cross-file rules.
check: index
	$(KB)kb-check $(STUDY) > $(OUT)/check.json

# publish: the kbucket:// and sha1:// URL of every file, to cite in a paper or a pipeline.
publish: check
	cd $(STUDY) && find . -path ./.kbucket -prune -o -type f -print | sort | \
	    $(KB)kb-url --sha1 - > $(abspath $(OUT))/urls.ndjson
	@echo "published $$(wc -l < $(OUT)/urls.ndjson) URLs in $(OUT)/urls.ndjson" >&2
