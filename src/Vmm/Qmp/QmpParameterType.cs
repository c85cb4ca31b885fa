namespace Vmm.Qmp;

/// <summary>The argument types vmm's commands take, named in errors as QEMU names them.</summary>
public enum QmpParameterType
{
    /// <summary>"str".</summary>
    String,

    /// <summary>"int": a JSON integer in the signed 64-bit range.</summary>
    Integer,

    /// <summary>"uint64" / "size": a JSON integer from 0 to 2^64-1 (addresses, lengths).</summary>
    Unsigned,

    /// <summary>"bool".</summary>
    Boolean,

    /// <summary>"['str']".</summary>
    StringList,

    /// <summary>An array of JSON objects (migrate-set-capabilities' list); the command checks the members.</summary>
    ObjectList,
}
