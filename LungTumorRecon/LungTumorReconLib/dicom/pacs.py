"""A PACS round trip: send a run's DICOM files to a PACS, fetch a study's CT from one. Not for clinical use.

By the address (:func:`parse_address`): DIMSE ``AET@HOST:PORT`` (pynetdicom: C-STORE; C-FIND and
C-GET) or a DICOMweb ``http(s)://.../dicom-web`` URL (dicomweb-client: STOW-RS; QIDO-RS and
WADO-RS). Each failure is one line naming the address. Sending twice adds no duplicate (a PACS
keys an instance by its SOPInstanceUID); a fetch is moved into place only when complete.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from LungTumorReconLib.errors import InputError, UnavailableError
from LungTumorReconLib.io.output_folder import check_output_dir, partial_folder

if TYPE_CHECKING:
    from pydicom import Dataset

DIMSE = "dimse"
DICOMWEB = "dicomweb"
DEFAULT_CALLING_AET = "LUNGTUMORRECON"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_STOW_BATCH = 20  # instances per STOW-RS request
_SUCCESS, _PENDING = 0x0000, (0xFF00, 0xFF01)
_STORE_WARNINGS = (0x0001, 0xB000, 0xB006, 0xB007)


@dataclass(frozen=True)
class PacsAddress:
    """Where a PACS listens: ``"dimse"`` (called ``aet``, ``host``, ``port``) or ``"dicomweb"`` (root ``url``)."""

    protocol: str
    aet: str = ""
    host: str = ""
    port: int = 0
    url: str = ""

    def __str__(self) -> str:
        return self.url if self.protocol == DICOMWEB else f"{self.aet}@{self.host}:{self.port}"


@dataclass
class SendReport:
    """What :func:`send_files` sent: ``files`` instances to ``address``, and the PACS's warnings."""

    address: PacsAddress
    files: int
    warnings: list[str] = field(default_factory=list)


def parse_address(text: str) -> PacsAddress:
    """The PACS address written as ``AET@HOST:PORT`` (DIMSE) or as a DICOMweb URL.

    Parameters
    ----------
    text : str
        ``ORTHANC@127.0.0.1:4242``, or ``http://host:8042/dicom-web`` (``https`` too).

    Returns
    -------
    PacsAddress
        The parsed address.

    Raises
    ------
    InputError
        When ``text`` is neither (an AE title has 1 to 16 characters, a port is 1 to 65535).
    """
    text = str(text).strip()
    if re.match(r"^https?://", text, re.I):
        if not urlsplit(text).hostname or "?" in text or "#" in text:
            raise InputError(f"{text!r} is not a DICOMweb URL (http(s)://HOST[:PORT]/PATH)")
        return PacsAddress(DICOMWEB, url=text.rstrip("/"))
    match = re.match(r"^([^@]+)@(\[[0-9A-Fa-f:.]+\]|[^:@\s]+):([0-9]{1,5})$", text)
    if match is None:
        raise InputError(f"{text!r} is not a PACS address (give AET@HOST:PORT or an http(s)://.../dicom-web URL)")
    aet, host, port = match.group(1).strip(), match.group(2).strip("[]"), int(match.group(3))
    if not 1 <= len(aet) <= 16 or "\\" in aet or not aet.isprintable() or not 0 < port < 65536:
        raise InputError(f"{text!r}: an AE title has 1 to 16 characters (no backslash), a port is 1 to 65535")
    return PacsAddress(DIMSE, aet=aet, host=host, port=port)


def dicom_files_of_run(folder: str | Path) -> list[Path]:
    """The DICOM files a run wrote: every ``*.dcm`` in its output folder (the SEG and SR), sorted.

    Parameters
    ----------
    folder : str or Path
        A results folder of ``lungtumorrecon run`` (or any folder of ``.dcm`` files).

    Returns
    -------
    list of Path
        The files; an ``InputError`` when ``folder`` is not a folder or has none.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("is not a folder", folder)
    files = sorted(p for p in folder.glob("*.dcm") if p.is_file())
    if not files:
        raise InputError("has no DICOM files (was the input DICOM? run without --no-dicom)", folder)
    return files


def send_files(files: list[Path], to: PacsAddress, calling_aet: str = DEFAULT_CALLING_AET,
               timeout_s: float = 30.0) -> SendReport:
    """Store DICOM files in a PACS: C-STORE (DIMSE) or STOW-RS (DICOMweb).

    Parameters
    ----------
    files : list of Path
        DICOM files (Part 10). Resending a file the PACS holds already adds no duplicate.
    to : PacsAddress
        The PACS (:func:`parse_address`).
    calling_aet, timeout_s : str, float, optional
        Our AE title (DIMSE only); seconds to wait for a connection and for each answer.

    Returns
    -------
    SendReport
        How many files were stored where, and the PACS's warnings.

    Raises
    ------
    InputError
        A file is not DICOM, or the PACS refuses an instance (a non-success status).
    UnavailableError
        The PACS cannot be reached, refuses the association or does not answer in time.
    """
    files = [Path(f) for f in files]
    if not files:
        raise InputError("no files to send")
    if not timeout_s > 0:
        raise InputError(f"{timeout_s} s: must be more than 0 seconds", option="timeout_s")
    contexts = sorted({_context_of(f) for f in files})
    if to.protocol == DICOMWEB:
        return _stow(files, to, timeout_s)
    if len(contexts) > 128:  # what one association can carry
        raise InputError(f"{len(contexts)} kinds of file (SOP class, transfer syntax): send at most 128 at once")
    report = SendReport(to, 0)
    with _association(to, calling_aet, timeout_s, [(c, [ts]) for c, ts in contexts]) as assoc:
        for path in files:
            try:
                status = assoc.send_c_store(path)
            except ValueError:  # the PACS accepted no presentation context for it
                raise InputError(f"the PACS refused the SOP class or transfer syntax of {path.name}", str(to)) from None
            code = _status_code(status, to, timeout_s, "C-STORE")
            if code in _STORE_WARNINGS:
                report.warnings.append(f"{path.name}: stored with warning status 0x{code:04X}")
            elif code != _SUCCESS:
                raise InputError(f"the PACS refused {path.name} (C-STORE status 0x{code:04X}; "
                                 f"{report.files} of {len(files)} files stored)", str(to))
            report.files += 1
    return report


def fetch_study(study_uid: str, source: PacsAddress, out: str | Path, overwrite: bool = False,
                calling_aet: str = DEFAULT_CALLING_AET, timeout_s: float = 30.0) -> Path:
    """Fetch a study's CT series (Modality CT, all of them) into a folder, one file per instance.

    Parameters
    ----------
    study_uid : str
        The StudyInstanceUID.
    source : PacsAddress
        The PACS (:func:`parse_address`).
    out : str or Path
        The folder to make; files are named ``SOPInstanceUID.dcm``.
    overwrite : bool, optional
        Replace a non-empty ``out`` (only once the whole study has arrived).
    calling_aet, timeout_s : str, float, optional
        Our AE title (DIMSE only); seconds to wait for a connection and for each answer.

    Returns
    -------
    Path
        ``out``, complete; on any failure it is left as it was.

    Raises
    ------
    InputError
        A malformed UID, an unknown study or one without CT, or an ``out`` that cannot be written.
    UnavailableError
        The PACS cannot be reached, refuses the association or does not answer in time.
    """
    study_uid = str(study_uid).strip()
    if not _UID.match(study_uid) or len(study_uid) > 64:
        raise InputError(f"{study_uid!r} is not a DICOM UID (digits and dots, 64 characters at most)")
    if not timeout_s > 0:
        raise InputError(f"{timeout_s} s: must be more than 0 seconds", option="timeout_s")
    out = check_output_dir(out, overwrite)  # refuse before any network work
    if source.protocol == DICOMWEB:
        return _fetch_dicomweb(study_uid, source, out, overwrite, timeout_s)
    return _fetch_dimse(study_uid, source, out, overwrite, calling_aet, timeout_s)


def _context_of(path: Path) -> tuple[str, str]:
    """The SOP class and transfer syntax of a DICOM file, which its C-STORE needs."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)
    except (InvalidDicomError, OSError, AttributeError) as exc:
        raise InputError(f"not a DICOM file with SOP class and transfer syntax ({type(exc).__name__})", path) from None


def _ct_series(series: dict[str, str], study_uid: str, address: PacsAddress) -> list[str]:
    """The UIDs of the CT series among ``series`` (UID: modality), or the error that there are none."""
    ct_series = [uid for uid, modality in series.items() if modality == "CT" and uid]
    if not series:
        raise InputError(f"the PACS has no study {study_uid}", str(address))
    if not ct_series:
        raise InputError(f"study {study_uid} has no CT series (has: {', '.join(sorted(set(series.values())))})",
                         str(address))
    return ct_series


@contextmanager
def _association(address: PacsAddress, calling_aet: str, timeout_s: float, contexts: list[tuple[str, list[str]]],
                 roles: list | None = None, handlers: list | None = None) -> Iterator:
    """An established association with ``address`` (released at the end), or a one-line error."""
    from pynetdicom import AE

    try:
        with socket.create_connection((address.host, address.port), timeout=timeout_s):
            pass  # a plain TCP connection first, for a precise reason when the host is not there
    except OSError as exc:
        reason = ("unknown host" if isinstance(exc, socket.gaierror) else f"no answer within {timeout_s:g} s"
                  if isinstance(exc, socket.timeout) else (exc.strerror or type(exc).__name__).lower())
        raise UnavailableError(f"cannot reach the PACS ({reason})", str(address)) from None
    try:
        ae = AE(ae_title=calling_aet)
    except ValueError as exc:
        raise InputError(str(exc).replace("'ae_title' value", "calling AE title"), option="calling_aet") from None
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout_s
    for abstract_syntax, transfer_syntaxes in contexts:
        ae.add_requested_context(abstract_syntax, transfer_syntaxes)
    assoc = ae.associate(address.host, address.port, ae_title=address.aet, ext_neg=roles, evt_handlers=handlers)
    if assoc.is_rejected:
        raise UnavailableError(f"the PACS rejected the association (called AE {address.aet!r}, calling AE "
                               f"{calling_aet!r})", str(address))
    if not assoc.is_established:
        raise UnavailableError(f"no DICOM association (not a DICOM port, or no answer within {timeout_s:g} s)",
                               str(address))
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _status_code(status, address: PacsAddress, timeout_s: float, what: str) -> int:
    """The status of a DIMSE answer; an empty one means no answer (timeout or abort)."""
    if not status or "Status" not in status:
        raise UnavailableError(f"no {what} answer within {timeout_s:g} s (association aborted)", str(address))
    return int(status.Status)


def _series_query(study_uid: str, **keys: str) -> Dataset:
    from pydicom import Dataset

    query = Dataset()
    for keyword, value in {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": study_uid, **keys}.items():
        setattr(query, keyword, value)
    return query


def _instance_file(folder: Path, uid: object, source: PacsAddress) -> Path:
    """Where an instance received from ``source`` goes: ``folder/SOPInstanceUID.dcm``."""
    if not _UID.match(str(uid)):
        raise InputError(f"the PACS sent an instance without a valid SOPInstanceUID ({str(uid)!r})", str(source))
    return folder / f"{uid}.dcm"


def _fetch_dimse(study_uid: str, source: PacsAddress, out: Path, overwrite: bool, calling_aet: str,
                 timeout_s: float) -> Path:
    from pydicom.uid import JPEG2000Lossless, JPEGLosslessSV1, RLELossless
    from pynetdicom import build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

    uncompressed = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]  # explicit, implicit VR little endian; and a
    # context per lossless compressed syntax, so that the PACS can send each instance as it stores it
    contexts = [(FIND, uncompressed), (GET, uncompressed), (CT_IMAGE_STORAGE, uncompressed)]
    contexts += [(CT_IMAGE_STORAGE, [ts]) for ts in (JPEGLosslessSV1, JPEG2000Lossless, RLELossless)]
    into: list[Path] = []  # the folder of the C-GET under way

    def store(event) -> int:  # our storage SCP; an exception here answers "failed" (0xC211)
        _instance_file(into[0], event.request.AffectedSOPInstanceUID, source).write_bytes(
            event.encoded_dataset(include_meta=True))
        return _SUCCESS

    roles = [build_role(CT_IMAGE_STORAGE, scp_role=True)]
    with _association(source, calling_aet, timeout_s, contexts, roles, [(evt.EVT_C_STORE, store)]) as assoc:
        series: dict[str, str] = {}
        query = _series_query(study_uid, SeriesInstanceUID="", Modality="")
        for status, identifier in assoc.send_c_find(query, FIND):
            code = _status_code(status, source, timeout_s, "C-FIND")
            if code in _PENDING and identifier is not None:
                series[str(identifier.get("SeriesInstanceUID", ""))] = str(identifier.get("Modality", ""))
            elif code not in (_SUCCESS, *_PENDING):
                raise InputError(f"the PACS refused the C-FIND for study {study_uid} (status 0x{code:04X})",
                                 str(source))
        ct_series = _ct_series(series, study_uid, source)
        with partial_folder(out, overwrite) as partial:
            into.append(partial)
            for series_uid in ct_series:
                for status, _ in assoc.send_c_get(_series_query(study_uid, SeriesInstanceUID=series_uid), GET):
                    code = _status_code(status, source, timeout_s, "C-GET")
                    if code not in (_SUCCESS, *_PENDING):
                        failed = status.get("NumberOfFailedSuboperations", "?")
                        raise InputError(f"the PACS did not send series {series_uid} (C-GET status 0x{code:04X}, "
                                         f"{failed} instances failed)", str(source))
            if not any(partial.iterdir()):
                raise InputError(f"the PACS sent no instance of study {study_uid}", str(source))
    return out


@contextmanager
def _web_errors(address: PacsAddress, timeout_s: float, not_found: Exception | None = None) -> Iterator[None]:
    """HTTP failures as one-line errors naming ``address`` (HTTP 404 as ``not_found`` if given)."""
    import requests

    try:
        yield
    except requests.exceptions.Timeout:
        raise UnavailableError(f"cannot reach the PACS (no answer within {timeout_s:g} s)", str(address)) from None
    except requests.exceptions.ConnectionError as exc:
        text = str(exc).lower()
        reasons = {"timed out": f"no answer within {timeout_s:g} s", "refused": "connection refused", "resol":
                   "unknown host", "aborted": "the server closed the connection: not an HTTP service?"}
        reason = next((r for key, r in reasons.items() if key in text), "no connection")
        raise UnavailableError(f"cannot reach the PACS ({reason})", str(address)) from None
    except requests.exceptions.HTTPError as exc:
        if not_found is not None and exc.response is not None and exc.response.status_code == 404:
            raise not_found from None
        answer = f"{exc.response.status_code} {exc.response.reason}" if exc.response is not None else "an error"
        raise UnavailableError(f"the DICOMweb service answered HTTP {answer}", str(address)) from None
    except requests.exceptions.RequestException as exc:
        raise UnavailableError(f"DICOMweb request failed ({type(exc).__name__})", str(address)) from None


def _web_client(address: PacsAddress, timeout_s: float):
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=address.url, timeout=timeout_s)
    client.set_http_retry_params(retry=False)  # one attempt: the caller's timeout is the whole wait
    return client


def _stow(files: list[Path], to: PacsAddress, timeout_s: float) -> SendReport:
    import pydicom

    client = _web_client(to, timeout_s)
    report = SendReport(to, 0)
    for start in range(0, len(files), _STOW_BATCH):
        batch = files[start:start + _STOW_BATCH]
        with _web_errors(to, timeout_s):
            answer = client.store_instances([pydicom.dcmread(f) for f in batch])
        failed = answer.get("FailedSOPSequence") or []
        if failed:
            reason = failed[0].get("FailureReason", "?")
            raise InputError(f"the PACS refused {len(failed)} of {len(batch)} instances (STOW-RS failure reason "
                             f"{reason}; {report.files} of {len(files)} files stored)", str(to))
        report.warnings += [f"{item.get('ReferencedSOPInstanceUID', '?')}: stored with warning 0x"
                            f"{int(item.WarningReason):04X}" for item in answer.get("ReferencedSOPSequence") or []
                            if "WarningReason" in item]
        report.files += len(batch)
    return report


def _fetch_dicomweb(study_uid: str, source: PacsAddress, out: Path, overwrite: bool, timeout_s: float) -> Path:
    client = _web_client(source, timeout_s)
    with _web_errors(source, timeout_s, not_found=InputError(f"the PACS has no study {study_uid}", str(source))):
        found = client.search_for_series(study_instance_uid=study_uid)  # Orthanc: [], some servers: HTTP 404
    def first(item: dict, tag: str) -> str:  # the first value of a DICOM JSON attribute
        return str(((item.get(tag) or {}).get("Value") or [""])[0])

    ct_series = _ct_series({first(s, "0020000E"): first(s, "00080060") for s in found}, study_uid, source)
    with partial_folder(out, overwrite) as partial:
        for series_uid in ct_series:
            with _web_errors(source, timeout_s):
                for ds in client.iter_series(study_uid, series_uid):
                    ds.save_as(_instance_file(partial, ds.get("SOPInstanceUID", ""), source), enforce_file_format=True)
        if not any(partial.iterdir()):
            raise InputError(f"the PACS sent no instance of study {study_uid}", str(source))
    return out
