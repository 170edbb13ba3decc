from pathlib import Path

import pytest

from federation.model import ModelLoadError, RoutingModel, load_model_file

BASE = """
version: 3
cluster: aws-use1
trust_domain: aws-use1.isthmus.test
locality: {cloud: aws, region: us-east-1}
peers:
  - cluster: gcp-euw1
    trust_domain: gcp-euw1.isthmus.test
    spiffe_id: spiffe://gcp-euw1.isthmus.test/isthmus/gateway/gcp-euw1
    addresses: ["127.0.0.1:25443"]
    locality: {cloud: gcp, region: europe-west1}
services:
  - name: checkout.shop
    local_endpoints: [{address: "127.0.0.1:8080"}]
    priorities:
      - weights: {aws-use1: 100}
      - weights: {gcp-euw1: 100}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return path


def test_valid_file_loads(tmp_path: Path) -> None:
    model = load_model_file(RoutingModel, write(tmp_path, BASE))
    assert model.version == 3
    assert model.services[0].priorities[1].weights == {"gcp-euw1": 100}


def test_unknown_field_is_named_with_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "colour: blue\n")
    with pytest.raises(ModelLoadError) as err:
        load_model_file(RoutingModel, path)
    assert str(path) in str(err.value)
    assert "colour" in str(err.value)


def test_priority_naming_unknown_cluster_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("{gcp-euw1: 100}", "{azure-weu: 100}"))
    with pytest.raises(ModelLoadError, match="unknown cluster.*azure-weu"):
        load_model_file(RoutingModel, path)


def test_peer_id_must_match_its_cluster(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("gateway/gcp-euw1", "gateway/other"))
    with pytest.raises(ModelLoadError, match="spiffe_id must be"):
        load_model_file(RoutingModel, path)
