# Types for the part of nagiosplugin 1.4 that check_fastcgi uses (it ships
# none). Checked against its source; extend when the plugin uses more.
from typing import Any, Callable, Iterable, Iterator, List, Optional, Union, overload

from .state import Critical as Critical
from .state import Ok as Ok
from .state import ServiceState
from .state import Unknown as Unknown
from .state import Warn as Warn

class Range:
    start: float
    end: float
    invert: bool
    def __init__(self, spec: Union[str, int, float, Range, None] = ...) -> None: ...
    def match(self, value: float) -> bool: ...

class Metric:
    name: str
    value: Any
    uom: Optional[str]
    min: Optional[float]
    max: Optional[float]
    context: str
    contextobj: Optional[Context]
    resource: Optional[Resource]
    def __init__(
        self,
        name: str,
        value: Any,
        uom: Optional[str] = ...,
        min: Optional[float] = ...,
        max: Optional[float] = ...,
        context: Optional[str] = ...,
        contextobj: Optional[Context] = ...,
        resource: Optional[Resource] = ...,
    ) -> None: ...

class Resource:
    @property
    def name(self) -> str: ...
    def probe(self) -> Union[Metric, Iterable[Metric]]: ...

class Result:
    state: ServiceState
    hint: Optional[str]
    metric: Optional[Metric]
    def __init__(self, state: ServiceState, hint: Optional[str] = ..., metric: Optional[Metric] = ...) -> None: ...
    @property
    def resource(self) -> Any: ...
    @property
    def context(self) -> Any: ...

class Results:
    @property
    def first_significant(self) -> Result: ...
    @property
    def most_significant_state(self) -> ServiceState: ...
    def __iter__(self) -> Iterator[Result]: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, item: int) -> Result: ...
    @overload
    def __getitem__(self, item: str) -> Result: ...
    def __contains__(self, name: object) -> bool: ...

class Context:
    name: str
    def __init__(
        self, name: str, fmt_metric: Union[str, Callable[..., str], None] = ..., result_cls: type = ...
    ) -> None: ...
    def evaluate(self, metric: Metric, resource: Resource) -> Union[Result, ServiceState]: ...
    def describe(self, metric: Metric) -> Optional[str]: ...

class ScalarContext(Context):
    warning: Range
    critical: Range
    def __init__(
        self,
        name: str,
        warning: Union[str, Range, None] = ...,
        critical: Union[str, Range, None] = ...,
        fmt_metric: Union[str, Callable[..., str], None] = ...,
        result_cls: type = ...,
    ) -> None: ...

class Summary:
    def ok(self, results: Results) -> str: ...
    def problem(self, results: Results) -> str: ...
    def verbose(self, results: Results) -> Union[str, List[str]]: ...
    def empty(self) -> str: ...

class Check:
    name: str
    results: Results
    perfdata: List[str]
    def __init__(self, *objects: Union[Resource, Context, Summary, Results], name: Optional[str] = ...) -> None: ...
    def __call__(self) -> None: ...
    @property
    def state(self) -> ServiceState: ...
    @property
    def summary_str(self) -> str: ...
    @property
    def verbose_str(self) -> Union[str, List[str]]: ...
    @property
    def exitcode(self) -> int: ...
