/** Types of the parts of svgcanvas (which ships none) the chart's SVG export uses. */
declare module "svgcanvas" {
  /** A canvas 2D context that records drawing as SVG. */
  export class Context {
    constructor(options: { width: number; height: number; document?: Document });
    /** The drawing as an SVG document's text; `true` replaces named entities (valid XML). */
    getSerializedSvg(fixNamedEntities?: boolean): string;
  }
}
