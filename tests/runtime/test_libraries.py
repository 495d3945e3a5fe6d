"""The sandbox image ships the libraries, tools and runtimes the README lists; each one works.

Every check runs code in a real sandbox through the public exec endpoint: the code makes one
real call with each library (write and read back an xlsx, xls, docx, pptx and pdf, fit models,
solve, parse, round-trip parquet, draw a seaborn plot) and prints what it got as JSON.
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.test_exec import run as run_code
from tests.conftest import LocalboxServer

# First calls import large libraries on one CPU: allow them time.
TIMEOUT = 120


@pytest.fixture(scope="module")
def container_id(server: LocalboxServer) -> Iterator[str]:
    client = server.client(max_retries=0)
    c = client.containers.create(name="libraries", memory_limit="4g")
    yield c.id
    client.containers.delete(c.id)


def run_json(server: LocalboxServer, container_id: str, code: str) -> dict[str, Any]:
    """Run Python that ends by printing one JSON object, and return that object."""
    result = run_code(server, container_id, code, timeout=TIMEOUT)
    assert result["status"] == "completed", result["error"] or result["stderr"]
    out: dict[str, Any] = json.loads(result["stdout"].strip().splitlines()[-1])
    return out


def test_every_library_imports(server: LocalboxServer, container_id: str) -> None:
    code = """
import importlib, json
names = ["numpy", "pandas", "scipy", "matplotlib", "seaborn", "sklearn", "statsmodels",
         "sympy", "networkx", "PIL", "openpyxl", "xlrd", "xlwt", "docx", "pptx", "reportlab",
         "pypdf", "pdfplumber", "pdfminer", "bs4", "lxml", "tabulate", "pyarrow", "pypdfium2"]
print(json.dumps({n: str(getattr(importlib.import_module(n), "__version__", "?")) for n in names}))
"""
    versions = run_json(server, container_id, code)
    assert len(versions) == 24


def test_spreadsheets_documents_and_slides(server: LocalboxServer, container_id: str) -> None:
    code = """
import json
import re
import docx, openpyxl, pandas as pd, pptx, xlrd, xlwt

wb = openpyxl.Workbook()
ws = wb.active
ws.title = "sales"
ws.append(["region", "amount"])
ws.append(["north", 12.5])
ws.append(["south", 30])
ws["D1"] = "=SUM(B2:B3)"
wb.save("sales.xlsx")
sheet = openpyxl.load_workbook("sales.xlsx")["sales"]
xlsx_rows = [list(r) for r in sheet.iter_rows(max_col=2, values_only=True)]
pandas_total = float(pd.read_excel("sales.xlsx")["amount"].sum())

book = xlwt.Workbook()
legacy = book.add_sheet("legacy")
legacy.write(0, 0, "count")
legacy.write(1, 0, 42)
book.save("legacy.xls")
xls = xlrd.open_workbook("legacy.xls").sheet_by_name("legacy")

doc = docx.Document()
doc.add_heading("Quarterly report", 0)
doc.add_paragraph("Revenue grew by 12%.")
table = doc.add_table(rows=1, cols=2)
table.rows[0].cells[0].text = "north"
doc.save("report.docx")
doc = docx.Document("report.docx")

deck = pptx.Presentation()
slide = deck.slides.add_slide(deck.slide_layouts[1])
slide.shapes.title.text = "Results"
slide.placeholders[1].text = "Up 12%"
deck.save("deck.pptx")
shapes = pptx.Presentation("deck.pptx").slides[0].shapes

print(json.dumps({
    "xlsx": xlsx_rows,
    "formula": openpyxl.load_workbook("sales.xlsx")["sales"]["D1"].value,
    "pandas_total": pandas_total,
    "xls": [xls.cell_value(0, 0), xls.cell_value(1, 0)],
    "docx": [p.text for p in doc.paragraphs],
    "docx_cell": doc.tables[0].rows[0].cells[0].text,
    "pptx": [s.text_frame.text for s in shapes if s.has_text_frame],
}))
"""
    got = run_json(server, container_id, code)
    assert got["xlsx"] == [["region", "amount"], ["north", 12.5], ["south", 30]]
    assert got["formula"] == "=SUM(B2:B3)"
    assert got["pandas_total"] == 42.5
    assert got["xls"] == ["count", 42.0]
    assert got["docx"] == ["Quarterly report", "Revenue grew by 12%."]
    assert got["docx_cell"] == "north"
    assert got["pptx"] == ["Results", "Up 12%"]


def test_pdf_written_then_read_by_three_extractors(
    server: LocalboxServer, container_id: str
) -> None:
    code = """
import json
import re
import pdfplumber, pypdf
from pdfminer.high_level import extract_text
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

c = canvas.Canvas("invoice.pdf", pagesize=A4)
c.drawString(72, 760, "Invoice 1234 total 99.50 EUR")
c.showPage()
c.drawString(72, 760, "Second page")
c.save()

reader = pypdf.PdfReader("invoice.pdf")
writer = pypdf.PdfWriter()
writer.add_page(reader.pages[1])
writer.write("second.pdf")

with pdfplumber.open("invoice.pdf") as pdf:
    plumber_text = pdf.pages[0].extract_text()
    words = [w["text"] for w in pdf.pages[0].extract_words()]
    rendered = pdf.pages[0].to_image(resolution=36).original.size  # drawn by pypdfium2

print(json.dumps({
    "pages": len(reader.pages),
    "pypdf": reader.pages[0].extract_text(),
    "plumber": plumber_text,
    "words": words,
    "rendered": list(rendered),
    "pdfminer": extract_text("invoice.pdf").split("\\f")[0].strip(),
    "second": pypdf.PdfReader("second.pdf").pages[0].extract_text(),
}))
"""
    got = run_json(server, container_id, code)
    line = "Invoice 1234 total 99.50 EUR"
    assert got["pages"] == 2
    assert got["pypdf"].strip() == line
    assert got["plumber"] == line
    assert got["words"] == line.split()
    assert got["rendered"] == [298, 421]  # A4 at 36 dpi
    assert got["pdfminer"] == line
    assert got["second"].strip() == "Second page"


def test_models_algebra_and_graphs(server: LocalboxServer, container_id: str) -> None:
    code = """
import json
import re
import networkx as nx, numpy as np, pandas as pd, statsmodels.api as sm, sympy
from scipy import optimize, stats
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import cross_val_score

rng = np.random.default_rng(0)
X = rng.normal(size=(200, 2))
y = 3 * X[:, 0] - 2 * X[:, 1] + 1 + rng.normal(scale=0.1, size=200)
model = LinearRegression().fit(X, y)
ols = sm.OLS(y, sm.add_constant(X)).fit()

x = sympy.symbols("x")
graph = nx.Graph()
graph.add_weighted_edges_from([("a", "b", 1), ("b", "c", 2), ("a", "c", 5)])
frame = pd.DataFrame({"g": ["a", "b", "a"], "v": [1, 2, 3]})

print(json.dumps({
    "sklearn": [round(c, 1) for c in model.coef_] + [round(model.intercept_, 1)],
    "cv": bool(cross_val_score(LinearRegression(), X, y, cv=5).min() > 0.99),
    "ols": [round(p, 1) for p in ols.params],
    "ols_r2": bool(ols.rsquared > 0.99),
    "root": round(optimize.brentq(lambda v: v * v - 2, 0, 2), 6),
    "ttest": bool(stats.ttest_ind(X[:, 0], X[:, 0] + 5).pvalue < 1e-6),
    "sympy": [int(r) for r in sympy.solve(x**2 - 5 * x + 6, x)],
    "integral": str(sympy.integrate(sympy.sin(x) ** 2, (x, 0, sympy.pi))),
    "path": nx.shortest_path(graph, "a", "c", weight="weight"),
    "groupby": frame.groupby("g")["v"].sum().to_dict(),
}))
"""
    got = run_json(server, container_id, code)
    assert got["sklearn"] == [3.0, -2.0, 1.0]
    assert got["cv"] is True
    assert got["ols"] == [1.0, 3.0, -2.0]
    assert got["ols_r2"] is True
    assert got["root"] == 1.414214
    assert got["ttest"] is True
    assert got["sympy"] == [2, 3]
    assert got["integral"] == "pi/2"
    assert got["path"] == ["a", "b", "c"]
    assert got["groupby"] == {"a": 4, "b": 2}


def test_images_markup_tables_and_parquet(server: LocalboxServer, container_id: str) -> None:
    code = """
import json
import re
import lxml.etree, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
from bs4 import BeautifulSoup
from PIL import Image, ImageDraw
from tabulate import tabulate

im = Image.new("RGB", (64, 32), "white")
ImageDraw.Draw(im).rectangle((0, 0, 31, 31), fill="red")
im.save("picture.png")
im = Image.open("picture.png")

soup = BeautifulSoup("<p>Hi <a href='/next'>next</a><td>1</td></p>", "lxml")
root = lxml.etree.fromstring("<r><i n='1'/><i n='2'/></r>")

table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
pq.write_table(table, "table.parquet")
pd.DataFrame({"k": [1.5, 2.5]}).to_parquet("frame.parquet")

print(json.dumps({
    "pixels": [list(im.getpixel((1, 1))), list(im.getpixel((40, 1)))],
    "size": list(im.size),
    "href": soup.find("a")["href"],
    "td": soup.find("td").get_text(),
    "xpath": root.xpath("//i/@n"),
    "tabulate": tabulate([["a", 1]], headers=["k", "v"], tablefmt="github"),
    "parquet": pq.read_table("table.parquet").equals(table),
    "pandas_parquet": pd.read_parquet("frame.parquet")["k"].tolist(),
}))
"""
    got = run_json(server, container_id, code)
    assert got["pixels"] == [[255, 0, 0], [255, 255, 255]]
    assert got["size"] == [64, 32]
    assert got["href"] == "/next"
    assert got["td"] == "1"
    assert got["xpath"] == ["1", "2"]
    assert got["tabulate"].splitlines() == ["| k   |   v |", "|-----|-----|", "| a   |   1 |"]
    assert got["parquet"] is True
    assert got["pandas_parquet"] == [1.5, 2.5]


def test_seaborn_plot_comes_back_as_an_image(server: LocalboxServer, container_id: str) -> None:
    code = """
import matplotlib.pyplot as plt, pandas as pd, seaborn as sns
frame = pd.DataFrame({"x": list(range(20)) * 2, "y": [v * v for v in range(20)] + list(range(20)),
                      "kind": ["square"] * 20 + ["line"] * 20})
sns.set_theme()
sns.lineplot(data=frame, x="x", y="y", hue="kind")
plt.title("seaborn")
plt.show()
"""
    result = run_code(server, container_id, code, timeout=TIMEOUT)
    assert result["status"] == "completed", result["error"] or result["stderr"]
    images = [o for o in result["outputs"] if o["type"] == "image"]
    assert len(images) == 1
    assert images[0]["media_type"] == "image/png"
    png = base64.b64decode(images[0]["data"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 300
    assert height >= 200


def test_command_line_tools(server: LocalboxServer, container_id: str) -> None:
    code = r"""
set -e
git --version
curl --version | head -n 1
unzip -v | head -n 1
zip -v | sed -n 2p
jq --version
sqlite3 --version
ffmpeg -version | head -n 1
file --version | head -n 1
cd /tmp && rm -rf tools && mkdir tools && cd tools
echo hello > a.txt
zip -q a.zip a.txt && rm a.txt && unzip -q a.zip && cat a.txt
echo '{"n": [1, 2, 3]}' | jq -c '.n | add'
sqlite3 :memory: 'create table t(v); insert into t values (20), (22); select sum(v) from t;'
curl -s file:///tmp/tools/a.txt
git init -q repo && git -C repo -c user.name=t -c user.email=t@t commit -q --allow-empty -m one
git -C repo log --format=%s
ffmpeg -loglevel error -f lavfi -i sine=frequency=440:duration=1 tone.wav
file -b --mime-type tone.wav
"""
    result = run_code(server, container_id, code, language="bash", timeout=TIMEOUT)
    assert result["exit_code"] == 0, result["stderr"]
    out = result["stdout"].splitlines()
    assert out[0].startswith("git version 2.")
    assert out[1].startswith("curl 7.")
    assert out[2].startswith("UnZip 6.")
    assert out[3].startswith("This is Zip 3.")
    assert out[4].startswith("jq-1.")
    assert out[5].startswith("3.")
    assert out[6].startswith("ffmpeg version ")
    assert out[7].startswith("file-5.")
    assert out[8:] == ["hello", "6", "42", "hello", "one", "audio/x-wav"]


def test_node_and_npm(server: LocalboxServer, container_id: str) -> None:
    code = r"""
set -e
id -u
pwd
node --version
npm --version
node -e 'console.log([1, 2, 3, 4].map((n) => n * n).reduce((a, b) => a + b))'
rm -rf node-check && mkdir node-check && cd node-check
npm init -y >/dev/null
npm pkg set scripts.squares='node -e "console.log(JSON.stringify([1, 2, 3].map((n) => n * n)))"'
npm run -s squares
cd .. && rm -rf node-check
"""
    result = run_code(server, container_id, code, language="bash", timeout=TIMEOUT)
    assert result["exit_code"] == 0, result["stderr"]
    out = result["stdout"].splitlines()
    assert out[:2] == ["1000", "/mnt/data"]  # the sandbox user, in its data folder
    assert out[2].startswith("v18.")
    assert re.fullmatch(r"\d+\.\d+\.\d+", out[3])
    assert out[4:] == ["30", "[1,4,9]"]


# What each optional runtime (LOCALBOX_SANDBOX_EXTRA_RUNTIMES) runs: each prints 30.
EXTRA_RUNTIMES = {
    "java": """cat > Squares.java <<'EOF'
public class Squares {
    public static void main(String[] args) {
        int sum = 0;
        for (int n = 1; n <= 4; n++) sum += n * n;
        System.out.println(sum);
    }
}
EOF
java Squares.java""",
    "php": """php -r 'echo array_sum(array_map(fn($n) => $n * $n, range(1, 4))), "\\n";'""",
    "ruby": """ruby -e 'puts (1..4).sum { |n| n * n }'""",
    "go": """cat > squares.go <<'EOF'
package main

import "fmt"

func main() {
	sum := 0
	for n := 1; n <= 4; n++ {
		sum += n * n
	}
	fmt.Println(sum)
}
EOF
go run squares.go""",
}


def test_extra_runtimes_as_the_image_was_built(server: LocalboxServer, container_id: str) -> None:
    """The default image has none of them; one built with LOCALBOX_SANDBOX_EXTRA_RUNTIMES has
    the ones it names, and each runs a program."""
    probe = "for c in java php ruby go; do command -v $c >/dev/null && echo $c; done; true"
    result = run_code(server, container_id, probe, language="bash", timeout=TIMEOUT)
    installed = result["stdout"].split()
    asked = os.environ.get("LOCALBOX_SANDBOX_EXTRA_RUNTIMES", "").replace(",", " ").split()
    expected = sorted(EXTRA_RUNTIMES) if "all" in asked else sorted(asked)
    assert sorted(installed) == expected
    for name in installed:
        code = f"set -e\nrm -rf /tmp/{name} && mkdir /tmp/{name} && cd /tmp/{name}\n"
        code += EXTRA_RUNTIMES[name]
        result = run_code(server, container_id, code, language="bash", timeout=TIMEOUT)
        assert result["exit_code"] == 0, (name, result["stderr"])
        assert result["stdout"].splitlines()[-1] == "30", (name, result["stdout"])
