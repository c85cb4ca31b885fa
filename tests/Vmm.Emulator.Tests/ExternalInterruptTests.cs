using Vmm.Accelerator;
using Vmm.Emulator.Processor;
using Vmm.Emulator.Tests.Infrastructure;

namespace Vmm.Emulator.Tests;

/// <summary>External interrupts on the software CPU: taken at instruction boundaries, only with IF set and no STI / MOV SS shadow.</summary>
public class ExternalInterruptTests
{
    /// <summary>A line that asserts a given vector a given number of times.</summary>
    private sealed class Line(byte vector, int count) : IInterruptSource
    {
        public int Remaining = count;

        public bool InterruptPending => Remaining > 0;

        public byte AcknowledgeInterrupt()
        {
            Remaining--;
            return vector;
        }
    }

    private const string Handler = """
            handler:
                push ds
                push eax
                xor ax, ax
                mov ds, ax
                inc dword [0x500]
                pop eax
                pop ds
                iret
            """;

    [Fact]
    public void InterruptIsTakenWithIfSetAndReturnsToTheInterruptedCode()
    {
        using var h = new CpuHarness();
        var line = new Line(0x08, 3);
        h.Cpu.Interrupts = line;
        h.Execute($$"""
                mov word [0x08*4], handler
                mov word [0x08*4+2], 0
                mov bx, sp
                sti
                mov cx, 200
            spin:
                loop spin
                cli
                mov dx, sp
                hlt
            {{Handler}}
            """);
        Assert.Equal(0, line.Remaining);
        Assert.Equal(3u, h.Read32(0x500));
        Assert.Equal(h.Reg(RegisterIndex.Ebx) & 0xFFFF, h.Reg(RegisterIndex.Edx) & 0xFFFF);
        Assert.Equal(0u, h.Reg(RegisterIndex.Ecx) & 0xFFFF);
    }

    [Fact]
    public void NoInterruptWhileIfIsClear()
    {
        using var h = new CpuHarness();
        var line = new Line(0x08, 1);
        h.Cpu.Interrupts = line;
        h.Execute($$"""
                mov word [0x08*4], handler
                mov word [0x08*4+2], 0
                mov cx, 100
            spin:
                loop spin
                hlt
            {{Handler}}
            """);
        Assert.Equal(1, line.Remaining);
        Assert.Equal(0u, h.Read32(0x500));
    }

    [Fact]
    public void StiHltWakesIntoTheHandlerAfterTheHlt()
    {
        using var h = new CpuHarness();
        var line = new Line(0x08, 0);
        h.Cpu.Interrupts = line;
        h.Load($$"""
                mov word [0x08*4], handler
                mov word [0x08*4+2], 0
                sti
                hlt
                cli
                hlt
            {{Handler}}
            """);
        Assert.Equal(CpuStop.Halted, h.Run());
        uint afterFirstHlt = h.Cpu.Eip;
        line.Remaining = 1;
        Assert.Equal(CpuStop.Halted, h.Run());
        Assert.Equal(1u, h.Read32(0x500));
        Assert.Equal(afterFirstHlt + 2, h.Cpu.Eip); // cli; hlt ran after the handler returned
    }
}
