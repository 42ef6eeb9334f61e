"""ONNX Runtime's own int8 of an encoder export, the way sherpa-onnx makes its *.int8.onnx: quantize_dynamic of the
weight matrices. Usage: ort_quantize.py SOURCE DESTINATION QInt8|QUInt8"""
import sys

from onnxruntime.quantization import QuantType, quantize_dynamic

source, destination, kind = sys.argv[1], sys.argv[2], sys.argv[3]
quantize_dynamic(source, destination, weight_type=QuantType.QInt8 if kind == "QInt8" else QuantType.QUInt8)
