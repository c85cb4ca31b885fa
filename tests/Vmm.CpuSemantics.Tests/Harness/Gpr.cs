namespace Vmm.CpuSemantics.Tests.Harness;

/// <summary>
/// The eight general registers, numbered as the x86 encodes them; the order PUSHAD stores them in and the order a
/// case record and a result slot hold them in.
/// </summary>
public enum Gpr
{
    Eax,
    Ecx,
    Edx,
    Ebx,
    Esp,
    Ebp,
    Esi,
    Edi,
}
