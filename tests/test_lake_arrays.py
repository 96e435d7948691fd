"""Unit tests: Arrow arrays built from buffers (morphlake.lake.arrays) and the publish check's key tests."""

import numpy as np
import pyarrow as pa
import pytest

from morphlake.errors import MorphlakeError
from morphlake.lake.arrays import numeric_array, string_array
from morphlake.lake.publish import check_partition


@pytest.mark.parametrize("values", [["a", "bc", ""], ["é", None, "x" * 300, None], [None, None], []])
def test_string_array_equals_pyarrows_own(values):
    built = string_array(values)
    built.validate(full=True)
    assert built.equals(pa.array(values, pa.string()))


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_numeric_array_equals_pyarrows_own_also_from_a_strided_column(dtype):
    matrix = np.arange(12, dtype=dtype).reshape(3, 4)
    built = numeric_array(matrix[:, 1])
    built.validate(full=True)
    assert built.equals(pa.array(matrix[:, 1]))


def keyed(ids: list) -> pa.Table:
    return pa.table({"snip_id": pa.array(ids, pa.string()), "z_mu_00": pa.array([0.0] * len(ids), pa.float32())})


def test_publish_check_names_repeated_and_missing_keys():
    check_partition(keyed(["a", "b", "c"]), "p", "snip_id", expected_rows=3)
    with pytest.raises(MorphlakeError, match="snip_id repeats: b"):
        check_partition(keyed(["a", "b", "b"]), "p", "snip_id", expected_rows=3)
    with pytest.raises(MorphlakeError, match="snip_id repeats: a"):
        check_partition(keyed(["a", None, "a", None]), "p", "snip_id", expected_rows=4)
    with pytest.raises(MorphlakeError, match="2 rows have no snip_id"):
        check_partition(keyed(["a", None, None]), "p", "snip_id", expected_rows=3)
