using Vmm.Emulator.Processor;
using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

public sealed class PortIoTests
{
    [Fact]
    public void InAllWidthsFromImmediateAndDxPorts()
    {
        using var h = new CpuHarness();
        var reads = new List<(ushort Port, int Size)>();
        h.PortReadHandler = (port, size) =>
        {
            reads.Add((port, size));
            return 0x8765_4321;
        };
        h.Execute("""
                mov eax, 0xAAAAAAAA
                in al, 0x60
                mov ebx, eax                ; AAAAAA21: only AL changes
                mov eax, 0xAAAAAAAA
                in ax, 0x61
                mov ecx, eax                ; AAAA4321
                in eax, 0x62
                mov esi, eax
                mov dx, 0x3F8
                mov eax, 0xAAAAAAAA
                in al, dx
                mov edi, eax
                mov dx, 0xCFC
                in ax, dx
                in eax, dx
                hlt
            """);
        Assert.Equal(0xAAAA_AA21u, h.Reg(RegisterIndex.Ebx));
        Assert.Equal(0xAAAA_4321u, h.Reg(RegisterIndex.Ecx));
        Assert.Equal(0x8765_4321u, h.Reg(RegisterIndex.Esi));
        Assert.Equal(0xAAAA_AA21u, h.Reg(RegisterIndex.Edi));
        Assert.Equal(0x8765_4321u, h.Reg(RegisterIndex.Eax));
        Assert.Equal(
            [(0x60, 1), (0x61, 2), (0x62, 4), (0x3F8, 1), (0xCFC, 2), (0xCFC, 4)],
            reads.Select(r => ((int)r.Port, r.Size)).ToArray());
    }

    [Fact]
    public void OutAllWidthsToImmediateAndDxPorts()
    {
        using var h = new CpuHarness().Execute("""
                mov eax, 0x12345678
                out 0x80, al
                out 0x81, ax
                out 0x82, eax
                mov dx, 0x1234
                out dx, al
                out dx, ax
                out dx, eax
                mov al, 'A'
                out 0xE9, al
                hlt
            """);
        Assert.Equal(
            [(0x80, 0x78u), (0x81, 0x5678u), (0x82, 0x12345678u), (0x1234, 0x78u), (0x1234, 0x5678u), (0x1234, 0x12345678u), (0xE9, 0x41u)],
            h.PortWrites.Select(w => ((int)w.Port, w.Value)).ToArray());
        Assert.Equal("A"u8.ToArray(), h.DebugOutput.ToArray());
    }

    [Fact]
    public void PortAccessEndsTheBlockSoAKickFromTheDeviceIsSeenAtOnce()
    {
        using var h = new CpuHarness();
        h.PortReadHandler = (port, size) =>
        {
            h.Cpu.Kick();
            return 0x42;
        };
        h.Load("""
                in al, 0x64                 ; the device kicks the vCPU
                mov bl, 1
                hlt
            """);
        Assert.Equal(CpuStop.Kicked, h.Cpu.Run(singleStep: false));
        Assert.Equal(CpuHarness.LoadAddress + 2, h.Cpu.Eip);
        Assert.Equal(0x42u, h.Reg(RegisterIndex.Eax) & 0xFF);
        Assert.Equal(0u, h.Reg(RegisterIndex.Ebx));
    }

    [Fact]
    public void ProtectedModeUserCodeMayUsePortsWhenIoplAllows()
    {
        using var h = new CpuHarness();
        h.PortReadHandler = (port, size) => 0x5A;
        FlatProtectedMode.Enter(h);
        h.Execute($"""
            bits 32
                {FlatProtectedMode.Gate(13, "gp")}
                push dword 0x33             ; SS
                push dword 0x8000           ; ESP
                push dword 0x3002           ; EFLAGS: IOPL 3
                push dword 0x2B             ; CS: ring 3
                push dword user
                iretd
            user:
                in al, 0x80
                mov bl, al
                mov al, 0x11
                out 0x81, al
                hlt                         ; #GP: HLT is ring 0 only
            gp: hlt
            """);
        Assert.Equal(0x5Au, h.Reg(RegisterIndex.Ebx) & 0xFF);
        Assert.Equal([(0x81, 0x11u)], h.PortWrites.Select(w => ((int)w.Port, w.Value)).ToArray());
    }

    [Fact]
    public void ProtectedModeStringIoChecksIoplToo()
    {
        using var h = new CpuHarness();
        FlatProtectedMode.Enter(h);
        h.Execute($"""
            bits 32
                {FlatProtectedMode.Gate(13, "gp")}
                push dword 0x33
                push dword 0x8000
                push dword 0x0002           ; IOPL 0
                push dword 0x2B
                push dword user
                iretd
            user:
                push dword 0x33
                pop ds
                mov esi, 0x600
                mov dx, 0xE9
                mov ecx, 4
                mov edi, faulting
            faulting:
                rep outsb
                hlt
            gp: mov eax, [esp+4]            ; EIP
                hlt
            """);
        Assert.Equal(h.Reg(RegisterIndex.Edi), h.Reg(RegisterIndex.Eax));
        Assert.Equal(4u, h.Reg(RegisterIndex.Ecx));
        Assert.Empty(h.PortWrites);
    }
}
