"""The five paper folders, in reading order: the one list every tool, test and CI step reads.

python -m tools.papers            # prints them, one per line (used by .ci/run)
"""

PAPERS = ("planar_flows", "maf", "iaf", "realnvp", "nsf")

if __name__ == "__main__":
    print("\n".join(PAPERS))
