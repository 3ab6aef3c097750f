// The per-task graph of who fetches from whom. Edges point parent → child; adding an edge that would
// close a cycle is refused, so pieces always flow away from the sources.
export class TaskDag {
  private readonly parents = new Map<string, Set<string>>()
  private readonly children = new Map<string, Set<string>>()

  addVertex(id: string): void {
    if (!this.parents.has(id)) {
      this.parents.set(id, new Set())
      this.children.set(id, new Set())
    }
  }

  hasVertex(id: string): boolean {
    return this.parents.has(id)
  }

  parentsOf(id: string): ReadonlySet<string> {
    return this.parents.get(id) ?? new Set()
  }

  childrenOf(id: string): ReadonlySet<string> {
    return this.children.get(id) ?? new Set()
  }

  /** True when `parent → child` keeps the graph acyclic: `parent` must not be `child` or below it. */
  canAddEdge(parent: string, child: string): boolean {
    if (parent === child || !this.hasVertex(parent) || !this.hasVertex(child)) return false
    if (this.parents.get(child)!.has(parent)) return true
    const seen = new Set<string>([child])
    const stack = [child]
    while (stack.length > 0) {
      const v = stack.pop()!
      for (const c of this.children.get(v)!) {
        if (c === parent) return false
        if (!seen.has(c)) {
          seen.add(c)
          stack.push(c)
        }
      }
    }
    return true
  }

  addEdge(parent: string, child: string): boolean {
    if (!this.canAddEdge(parent, child)) return false
    this.parents.get(child)!.add(parent)
    this.children.get(parent)!.add(child)
    return true
  }

  removeEdge(parent: string, child: string): void {
    this.parents.get(child)?.delete(parent)
    this.children.get(parent)?.delete(child)
  }

  /** Removes every edge into `child`; returns the parents it had. */
  removeInEdges(child: string): Array<string> {
    const ps = [...this.parentsOf(child)]
    for (const p of ps) this.removeEdge(p, child)
    return ps
  }

  removeVertex(id: string): void {
    for (const p of [...this.parentsOf(id)]) this.removeEdge(p, id)
    for (const c of [...this.childrenOf(id)]) this.removeEdge(id, c)
    this.parents.delete(id)
    this.children.delete(id)
  }

  /** Depth-first check used by tests: the graph has no cycle. */
  isAcyclic(): boolean {
    const state = new Map<string, 1 | 2>()
    const visit = (v: string): boolean => {
      state.set(v, 1)
      for (const c of this.children.get(v) ?? []) {
        const s = state.get(c)
        if (s === 1) return false
        if (s === undefined && !visit(c)) return false
      }
      state.set(v, 2)
      return true
    }
    for (const v of this.parents.keys()) if (!state.has(v) && !visit(v)) return false
    return true
  }

  get size(): number {
    return this.parents.size
  }
}
