"""The strict half of the EC2 stand-in (ec2_standin.py): a request's form
body read back into parameters by the EC2 service model of Debian's
python3-botocore and validated by botocore's ParamValidator, and its SigV4
signature verified by signing it again with botocore's signer. Errors are
AWS's codes (UnknownParameter, InvalidParameterValue, MissingParameter,
AuthFailure, SignatureDoesNotMatch, ...)."""

import base64
import calendar
import secrets
import time
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.session
import botocore.validate

XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"
MODEL = botocore.session.get_session().get_service_model("ec2")


class ApiError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


# --- Requests against the model ----------------------------------------------

def wire_name(member, shape):
    s = shape.serialization
    if "queryName" in s:
        return s["queryName"]
    if "name" in s:
        return s["name"][0].upper() + s["name"][1:]
    return member


def scalar(shape, key, text):
    t = shape.type_name
    try:
        if t == "string":
            if shape.enum and text not in shape.enum:
                raise ApiError("InvalidParameterValue", f"Value ({text}) for parameter {key} is invalid.")
            return text
        if t in ("integer", "long"):
            return int(text)
        if t == "boolean":
            if text not in ("true", "false"):
                raise ValueError(text)
            return text == "true"
        if t in ("double", "float"):
            return float(text)
        if t == "timestamp":
            return text
        if t == "blob":
            return base64.b64decode(text, validate=True)
    except ApiError:
        raise
    except Exception:
        raise ApiError("InvalidParameterValue", f"Value ({text}) for parameter {key} is invalid.")
    raise ApiError("InvalidParameterValue", f"{key}: shape type {t} is not supported by the stand-in")


def read_shape(shape, flat, prefix, used):
    """The value of `shape` at wire key `prefix` from `flat`, or None."""
    if shape.type_name == "structure":
        out = {}
        for member, mshape in shape.members.items():
            key = wire_name(member, mshape)
            key = f"{prefix}.{key}" if prefix else key
            value = read_shape(mshape, flat, key, used)
            if value is not None:
                out[member] = value
        return out if out or not prefix else None
    if shape.type_name == "list":
        items, i = [], 1
        while True:
            key = f"{prefix}.{i}"
            if key not in flat and not any(k.startswith(key + ".") for k in flat):
                break
            items.append(read_shape(shape.member, flat, key, used))
            i += 1
        return items or None
    if prefix in flat:
        used.add(prefix)
        return scalar(shape, prefix, flat[prefix])
    return None


def parse_request(form):
    """(action, params) of a form body, checked against the model."""
    flat = {}
    for key, value in urllib.parse.parse_qsl(form, keep_blank_values=True, strict_parsing=bool(form)):
        if key in flat:
            raise ApiError("InvalidParameterValue", f"parameter {key} is given twice")
        flat[key] = value
    action = flat.pop("Action", None)
    version = flat.pop("Version", None)
    if not action:
        raise ApiError("MissingAction", "The request must contain the parameter Action")
    if version != MODEL.api_version:
        raise ApiError("InvalidParameterValue", f"Version {version!r} is not {MODEL.api_version}")
    if action not in MODEL.operation_names:
        raise ApiError("InvalidAction", f"The action {action} is not valid for this web service.")
    shape = MODEL.operation_model(action).input_shape
    used = set()
    params = read_shape(shape, flat, "", used) or {}
    unknown = sorted(set(flat) - used)
    if unknown:
        raise ApiError("UnknownParameter", f"The parameter {unknown[0]} is not recognized")
    report = botocore.validate.ParamValidator().validate(params, shape)
    if report.has_errors():
        text = report.generate_report().replace("\n", " ")
        raise ApiError("MissingParameter" if "Missing required parameter" in text else "InvalidParameterValue", text)
    return action, params


# --- SigV4 ------------------------------------------------------------------

def verify_signature(method, headers, path, body, region, keys):
    """Raises AuthFailure unless `headers` (case-insensitive, as
    http.server gives them) carry a valid SigV4 signature of this request
    by one of `keys` ({key id: secret})."""
    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        raise ApiError("AuthFailure", "AWS was not able to validate the provided access credentials", 401)
    try:
        fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
        key_id, date, cred_region, service, term = fields["Credential"].split("/")
        fields["SignedHeaders"], fields["Signature"]
    except (ValueError, KeyError):
        raise ApiError("IncompleteSignature", "the Authorization header is not a SigV4 signature", 400)
    if key_id not in keys:
        raise ApiError("AuthFailure", "AWS was not able to validate the provided access credentials", 401)
    if cred_region != region or service != "ec2" or term != "aws4_request":
        raise ApiError("AuthFailure", f"Credential should be scoped to a valid region ({region}) and service ec2",
                       401)
    signed = fields["SignedHeaders"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        raise ApiError("AuthFailure", "host and x-amz-date must be signed", 401)
    for h in signed:
        if headers.get(h) is None:
            raise ApiError("SignatureDoesNotMatch", f"signed header {h} is not in the request", 403)
    amz_date = headers.get("X-Amz-Date", "")
    if not amz_date.startswith(date):
        raise ApiError("AuthFailure", "the X-Amz-Date does not match the credential's date", 401)
    try:
        skew = abs(time.time() - calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        raise ApiError("AuthFailure", "X-Amz-Date is not a date", 401)
    if skew > 300:
        raise ApiError("RequestExpired", "Request has expired.", 400)
    req = botocore.awsrequest.AWSRequest(method=method, url="http://" + headers["Host"] + path, data=body,
                                         headers={h: headers[h] for h in signed})
    req.context["timestamp"] = amz_date
    signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(key_id, keys[key_id]), "ec2", region)
    expected = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    if not secrets.compare_digest(expected, fields["Signature"]):
        raise ApiError("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                       "signature you provided.", 403)
